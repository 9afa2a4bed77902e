"""One validated settings object: a YAML file overridden by ``FLYWHEEL_*`` environment variables.

Precedence, highest first: explicit keyword arguments, environment variables, the YAML file, defaults.
Nested keys use a double underscore in the environment: ``FLYWHEEL_DATA_SPLIT__EVAL_SIZE=50``.
The YAML file is ``--config``, else ``$FLYWHEEL_CONFIG``, else ``config/flywheel.yaml`` when it exists.

Every invalid value fails at start with a :class:`~dataflywheel.errors.ConfigError` that names the setting.
The sections live in :mod:`.data`, :mod:`.models`, :mod:`.service` and :mod:`.outputs`, the root object and
its loading in :mod:`.root`; import them from here.
"""

from dataflywheel.settings.base import DEFAULT_CONFIG_PATH, ENV_PREFIX, secret_from_env
from dataflywheel.settings.data import (
    DataSplitSettings,
    DedupMode,
    EmbedderSettings,
    ExampleSelection,
    ICLSettings,
    JobStoreSettings,
    LogStoreBackend,
    LogStoreSettings,
    WorkloadTypeSetting,
)
from dataflywheel.settings.models import CandidateSettings, LoRASettings, ServingSettings, TrainingSettings
from dataflywheel.settings.outputs import MIN_SALT_CHARS, MlflowSettings, PrivacySettings, RedactMode
from dataflywheel.settings.root import (
    Settings,
    format_validation_error,
    load_settings,
    resolve_config_path,
    with_overrides,
)
from dataflywheel.settings.schedule import DriftMetric, DriftSettings, ScheduleSettings
from dataflywheel.settings.service import (
    SMOLLM2_TOKENIZER,
    ApiSettings,
    CostSettings,
    ExecutorSettings,
    JudgeSettings,
    ProxySettings,
    RecommendationSettings,
    TeacherSettings,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "MIN_SALT_CHARS",
    "SMOLLM2_TOKENIZER",
    "ApiSettings",
    "CandidateSettings",
    "CostSettings",
    "DataSplitSettings",
    "DedupMode",
    "DriftMetric",
    "DriftSettings",
    "EmbedderSettings",
    "ExampleSelection",
    "ExecutorSettings",
    "ICLSettings",
    "JobStoreSettings",
    "JudgeSettings",
    "LoRASettings",
    "LogStoreBackend",
    "LogStoreSettings",
    "MlflowSettings",
    "PrivacySettings",
    "ProxySettings",
    "RecommendationSettings",
    "RedactMode",
    "ScheduleSettings",
    "ServingSettings",
    "Settings",
    "TeacherSettings",
    "TrainingSettings",
    "WorkloadTypeSetting",
    "format_validation_error",
    "load_settings",
    "resolve_config_path",
    "secret_from_env",
    "with_overrides",
]
