"""The root settings object, its YAML source, and loading with overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dataflywheel.errors import ConfigError
from dataflywheel.settings.base import (
    DEFAULT_CONFIG_PATH,
    ENV_PREFIX,
    section_field,
)
from dataflywheel.settings.data import DataSplitSettings, ICLSettings, JobStoreSettings, LogStoreSettings
from dataflywheel.settings.models import CandidateSettings, LoRASettings, ServingSettings, TrainingSettings
from dataflywheel.settings.outputs import MlflowSettings, PrivacySettings
from dataflywheel.settings.schedule import DriftSettings, ScheduleSettings
from dataflywheel.settings.service import (
    ApiSettings,
    CostSettings,
    ExecutorSettings,
    JudgeSettings,
    ProxySettings,
    RecommendationSettings,
    TeacherSettings,
)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file; a missing explicit file or a non-mapping document is a ConfigError."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data = _read_yaml(path) if path is not None else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, object]:
        return dict(self._data)


def _read_yaml(path: Path) -> dict[str, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of sections")
    return data


# The YAML path for the Settings being built now (a context variable, so concurrent loads don't mix).
_yaml_path: ContextVar[Path | None] = ContextVar("_yaml_path", default=None)


class Settings(BaseSettings):
    """Everything data-flywheel can be told. Each field's description is its documentation: the comments of
    ``config/flywheel.yaml`` (:mod:`dataflywheel.settings_template`) and the API's schema show the same text."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(
        Path(".flywheel"),
        description="Data directory: the SQLite log store, dataset builds, jobs and adapters live here.",
    )
    curation_workers: int | None = Field(
        None, ge=0, le=64, description="Processes that inspect records in a build; null: one per core; 0: none."
    )
    log_store: LogStoreSettings = section_field(LogStoreSettings)
    job_store: JobStoreSettings = section_field(JobStoreSettings)
    data_split: DataSplitSettings = section_field(DataSplitSettings)
    icl: ICLSettings = section_field(ICLSettings)
    training: TrainingSettings = section_field(TrainingSettings)
    lora: LoRASettings = section_field(LoRASettings)
    candidates: list[CandidateSettings] = Field(
        default_factory=list,
        description="Candidate models to evaluate and customize. Each: name, source (hub id, folder, GGUF or "
        "builtin alias), engine (local | openai with base_url, model_id, api_key_env), customizable, "
        "context_length, and a price (in cost.currency): price_per_1m_input_tokens + price_per_1m_output_tokens "
        "(a hosted endpoint), or price_per_gpu_hour (the hourly price of the machine serving it, divided by the "
        "throughput its evals measure). A candidate without a price has an unknown cost. For example: "
        "[{name: smollm2-135m-instruct, price_per_gpu_hour: 0.80}].",
    )
    serving: ServingSettings = section_field(ServingSettings)
    judge: JudgeSettings = section_field(JudgeSettings)
    teacher: TeacherSettings = section_field(TeacherSettings)
    cost: CostSettings = section_field(CostSettings)
    recommendation: RecommendationSettings = section_field(RecommendationSettings)
    executor: ExecutorSettings = section_field(ExecutorSettings)
    api: ApiSettings = section_field(ApiSettings)
    proxy: ProxySettings = section_field(ProxySettings)
    mlflow: MlflowSettings = section_field(MlflowSettings)
    privacy: PrivacySettings = section_field(PrivacySettings)
    schedule: ScheduleSettings = section_field(ScheduleSettings)
    drift: DriftSettings = section_field(DriftSettings)

    @model_validator(mode="after")
    def _unique_candidates(self) -> Settings:
        seen: set[str] = set()
        for c in self.candidates:
            if c.name in seen:
                raise ValueError(f"candidate name {c.name!r} is configured twice")
            seen.add(c.name)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls, _yaml_path.get()))

    # Derived locations -------------------------------------------------------------------------------
    @property
    def sqlite_log_path(self) -> Path:
        return self.log_store.sqlite_path or self.home / "logs.db"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"


def resolve_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The YAML file to read: the explicit one, ``$FLYWHEEL_CONFIG``, or the default when it exists."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_settings(config: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise :class:`ConfigError` naming the first bad setting and why."""
    path = resolve_config_path(config)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    token = _yaml_path.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=path)) from None
    finally:
        _yaml_path.reset(token)


def with_overrides(settings: Settings, **sections: Mapping[str, object]) -> Settings:
    """A copy of ``settings`` with some keys of some sections replaced (a job's or a build's overrides).

    ``with_overrides(s, data_split={"eval_size": 50})``. Values are validated like the file's; a bad one
    raises :class:`ConfigError` naming ``section.key``. None values are ignored (not overridden).
    """
    update: dict[str, BaseModel] = {}
    for name, values in sections.items():
        current = getattr(settings, name, None)
        if not isinstance(current, BaseModel):
            raise ConfigError(f"{name}: not a settings section")
        changes = {k: v for k, v in values.items() if v is not None}
        if not changes:
            continue
        try:
            update[name] = type(current).model_validate(current.model_dump() | changes)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, prefix=name, env_hint=False)) from None
    return settings.model_copy(update=update)


def format_validation_error(
    exc: ValidationError, source: Path | None = None, prefix: str = "", env_hint: bool = True
) -> str:
    """One line per problem: ``data_split.eval_size: Input should be greater than 0 (got -1)``."""
    lines = []
    for err in exc.errors():
        loc = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]]) or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        got = f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err.get("input"), dict) else ""
        env = f" [env {ENV_PREFIX}{loc.upper().replace('.', '__')}]" if env_hint and loc != "settings" else ""
        lines.append(f"{loc}: {msg}{got}{env}")
    where = f" in {source}" if source else ""
    return f"invalid settings{where}:\n  " + "\n  ".join(lines)
