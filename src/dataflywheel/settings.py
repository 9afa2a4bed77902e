"""One validated settings object: a YAML file overridden by ``FLYWHEEL_*`` environment variables.

Precedence, highest first: explicit keyword arguments, environment variables, the YAML file, defaults.
Nested keys use a double underscore in the environment: ``FLYWHEEL_DATA_SPLIT__EVAL_SIZE=50``.
The YAML file is ``--config``, else ``$FLYWHEEL_CONFIG``, else ``config/flywheel.yaml`` when it exists.

Every invalid value fails at start with a :class:`~dataflywheel.errors.ConfigError` that names the setting.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dataflywheel.errors import ConfigError
from dataflywheel.privacy.kinds import PiiKind

DEFAULT_CONFIG_PATH = Path("config/flywheel.yaml")
ENV_PREFIX = "FLYWHEEL_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LogStoreBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    ELASTICSEARCH = "elasticsearch"


class LogStoreSettings(_Section):
    backend: LogStoreBackend = Field(LogStoreBackend.SQLITE, description="Where logs live.")
    sqlite_path: Path | None = Field(None, description="SQLite file; default <home>/logs.db.")
    postgres_url: str | None = Field(None, description="postgresql://user@host:port/db (backend postgres).")
    postgres_table: str = Field("flywheel_logs", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    elasticsearch_url: str = Field("http://localhost:9200", description="Elasticsearch 8 URL.")
    elasticsearch_index: str = Field("flywheel", min_length=1, description="Index of the log records.")
    elasticsearch_api_key_env: str | None = Field(None, description="Env var holding an ES API key.")
    batch_size: int = Field(1000, ge=1, le=100_000, description="Rows per write and per fetched page.")

    @model_validator(mode="after")
    def _url_for_backend(self) -> LogStoreSettings:
        if self.backend is LogStoreBackend.POSTGRES and not self.postgres_url:
            raise ValueError("postgres_url is required when backend is 'postgres'")
        return self


class JobStoreSettings(_Section):
    url: str | None = Field(None, description="SQLAlchemy URL of the job store; default SQLite under home.")


class DedupMode(StrEnum):
    USER_TURNS = "user_turns"
    """Two records are duplicates when their user turns are equal (the blueprint's rule)."""
    FULL = "full"
    """Two records are duplicates when system prompt, tools and every message are equal."""


class WorkloadTypeSetting(StrEnum):
    AUTO = "auto"
    TOOL_CALLING = "tool_calling"
    GENERIC = "generic"


class DataSplitSettings(_Section):
    eval_size: int = Field(100, ge=1, description="Records held out for evaluation.")
    val_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the non-eval records for validation.")
    min_total_records: int = Field(50, ge=1, description="Fewer usable records than this is an error.")
    limit: int = Field(10_000, ge=1, description="Most records used, newest first, after curation.")
    random_seed: int | None = Field(42, description="Seed of the split; null draws one and records it in the manifest.")
    parse_function_arguments: bool = Field(
        True, description="Drop records whose tool-call arguments are not valid JSON."
    )
    keep_text_answers: bool = Field(
        True, description="In tool-calling workloads, keep text answers as class 'no_tool'."
    )
    dedup: DedupMode = Field(DedupMode.USER_TURNS, description="What makes two records duplicates.")
    max_tool_properties: int | None = Field(
        8, ge=1, description="Reject records with a tool of more properties (a NIM limit); null: no limit."
    )
    workload_type: WorkloadTypeSetting = Field(WorkloadTypeSetting.AUTO)

    @model_validator(mode="after")
    def _limit_vs_min(self) -> DataSplitSettings:
        if self.limit < self.min_total_records:
            raise ValueError(f"limit ({self.limit}) cannot be less than min_total_records ({self.min_total_records})")
        return self


class ExampleSelection(StrEnum):
    UNIFORM_DISTRIBUTION = "uniform_distribution"
    SEMANTIC_SIMILARITY = "semantic_similarity"


class EmbedderSettings(_Section):
    kind: Literal["local", "openai"] = Field("local", description="local sentence-transformers or endpoint.")
    model: str = Field(
        "builtin:all-minilm-l6-v2",
        description="Local: builtin:all-minilm-l6-v2, a folder or a hub id. Endpoint: the model id.",
    )
    base_url: str | None = Field(None, description="OpenAI-compatible base URL (.../v1) for kind openai.")
    api_key_env: str | None = Field(None, description="Env var with the endpoint's API key.")
    batch_size: int = Field(64, ge=1, le=4096)
    input_type: str | None = Field(
        "query", description="Sent as input_type to endpoints that want it (NIM); null: not sent."
    )

    @model_validator(mode="after")
    def _url_for_endpoint(self) -> EmbedderSettings:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("base_url is required when kind is 'openai'")
        return self


class ICLSettings(_Section):
    max_context_length: int = Field(8192, ge=256, description="Context window the examples must fit in.")
    reserved_tokens: int = Field(2048, ge=0, description="Tokens kept free for the answer.")
    max_examples: int = Field(3, ge=0, le=64)
    min_examples: int = Field(1, ge=0, description="Records that fit fewer examples are counted and warned.")
    example_selection: ExampleSelection = ExampleSelection.UNIFORM_DISTRIBUTION
    relevance_ratio: float = Field(0.7, ge=0.0, le=1.0, description="Share of examples picked by relevance.")
    tokenizer: str = Field(
        "builtin:all-minilm-l6-v2",
        description="Tokenizer that counts tokens: builtin:all-minilm-l6-v2, a tokenizer.json or folder.",
    )
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)

    @model_validator(mode="after")
    def _consistent(self) -> ICLSettings:
        if self.reserved_tokens >= self.max_context_length:
            raise ValueError(
                f"reserved_tokens ({self.reserved_tokens}) must be less than "
                f"max_context_length ({self.max_context_length})"
            )
        if self.min_examples > self.max_examples:
            raise ValueError(f"min_examples ({self.min_examples}) cannot exceed max_examples ({self.max_examples})")
        return self


class TrainingSettings(_Section):
    """LoRA fine-tuning. Every hyperparameter left at null comes from the recipe (``recipe``), chosen by the
    candidate's size and the dataset's size (see :mod:`dataflywheel.training.recipes`); a value set here wins
    over the recipe, and a job's ``training_config`` wins over both."""

    recipe: str = Field(
        "auto",
        description="auto (by the candidate's parameter count: tiny < 0.5B, small < 3B, large) | tiny | small | "
        "large | blueprint (NVIDIA's blueprint defaults: lr 1e-4, rank 32, alpha 16, batch 16, 2 epochs).",
    )
    epochs: int | None = Field(None, ge=1, description="Epochs at most (best-epoch selection may stop earlier).")
    batch_size: int | None = Field(None, ge=1, description="Examples per optimizer step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches a step is split into (memory).")
    learning_rate: float | None = Field(None, gt=0)
    lr_schedule: Literal["constant", "linear", "cosine"] | None = None
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    max_seq_length: int = Field(4096, ge=16, description="Longer rows are reported and left out, never cut.")
    seed: int = 42
    class_balance: bool | None = Field(
        None, description="Oversample rare classes (first tool called, or no_tool) of the train split."
    )
    select_best_epoch: bool | None = Field(
        None,
        description="Score function-name accuracy on the validation split after each epoch, keep the best "
        "epoch's adapter and stop when it stops improving.",
    )

    @model_validator(mode="after")
    def _known_recipe(self) -> TrainingSettings:
        from dataflywheel.training.recipes import AUTO, RECIPES

        if self.recipe != AUTO and self.recipe not in RECIPES:
            raise ValueError(f"recipe {self.recipe!r} is unknown (known: {', '.join([AUTO, *RECIPES])})")
        return self


class LoRASettings(_Section):
    """LoRA adapter shape; null values come from the training recipe."""

    adapter_dim: int | None = Field(None, ge=1, description="LoRA rank (the blueprint's adapter_dim).")
    alpha: int | None = Field(None, ge=1, description="LoRA scaling alpha.")
    dropout: float | None = Field(None, ge=0, lt=1)
    target_modules: str | list[str] = Field("all-linear")


def _check_token_prices(section: Any) -> None:
    """Per-token prices come in pairs: one without the other would make every cost unknown or wrong."""
    given = (section.price_per_1m_input_tokens is not None, section.price_per_1m_output_tokens is not None)
    if given[0] != given[1]:
        missing = "price_per_1m_output_tokens" if given[0] else "price_per_1m_input_tokens"
        raise ValueError(f"{missing} is required when the other per-token price is set (0 for free)")


class CandidateSettings(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@:-]*$")
    source: str | None = Field(None, description="Hub id, local folder, GGUF file or builtin alias.")
    engine: Literal["local", "openai"] = "local"
    base_url: str | None = None
    model_id: str | None = None
    api_key_env: str | None = None
    customizable: bool = True
    context_length: int = Field(8192, ge=256)
    price_per_1m_input_tokens: float | None = Field(
        None, ge=0, description="Price of 1M prompt tokens (a hosted endpoint); null: unknown. Pairs with output."
    )
    price_per_1m_output_tokens: float | None = Field(
        None, ge=0, description="Price of 1M completion tokens; null: unknown."
    )
    price_per_gpu_hour: float | None = Field(
        None,
        ge=0,
        description="Hourly price of the machine (GPU) serving it, divided by the eval's measured throughput; "
        "null: unknown. Set this or the per-token prices, not both.",
    )

    @model_validator(mode="after")
    def _one_price_basis(self) -> CandidateSettings:
        _check_token_prices(self)
        if self.price_per_1m_input_tokens is not None and self.price_per_gpu_hour is not None:
            raise ValueError("set per-token prices or price_per_gpu_hour, not both")
        return self


class ServingSettings(_Section):
    backend: Literal["auto", "flywheel", "vllm"] = Field(
        "auto", description="What serves local candidates: auto = vllm when it and a CUDA GPU are present."
    )
    vllm_extra_args: list[str] = Field(default_factory=list, description="More vllm api_server arguments.")
    ready_timeout_s: float = Field(600.0, gt=0, description="How long a starting model server may take.")


class ExecutorSettings(_Section):
    kind: Literal["embedded", "celery"] = Field(
        "embedded", description="embedded: stages run in this process's threads; celery: on Celery workers."
    )
    workers: int = Field(4, ge=1, le=256, description="Stages the embedded executor runs at once.")
    model_slots: int = Field(
        2, ge=1, description="Local candidates deployed at once (each a model server using memory and cores)."
    )
    training_slots: int = Field(1, ge=1, description="LoRA trainings at once (each wants every core or a GPU).")
    compute_slots: int | None = Field(
        None, ge=1, description="Evals and trainings computing at once; null: 1 on a CPU-only machine, 4 per GPU."
    )
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (executor celery).")
    stage_attempts: int = Field(
        2,
        ge=1,
        le=10,
        description="Attempts of a stage whose owner (process, worker) died before the stage ends crashed, with "
        "the reason; it holds under Celery too.",
    )
    heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="How often a running job's driver and each running stage attempt renew their lease; also how "
        "often flywheel serve looks for orphaned jobs.",
    )
    stale_after_s: float = Field(
        60.0,
        gt=0,
        description="A job or stage whose owner has been silent this long counts as dead: it is taken over (a "
        "stage re-run, or ended crashed when no attempt is left) within this time. Several heartbeats long.",
    )
    visibility_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="Celery (Redis) broker: a delivered stage task not acknowledged for this long is delivered "
        "again. Stage tasks are acknowledged when they start, so it never fires while a stage runs: a worker "
        "killed mid-stage is covered by the driver taking over its silent stage within stale_after_s; this only "
        "re-delivers tasks a dead worker had reserved but not started.",
    )
    resend_after_s: float = Field(
        900.0,
        gt=0,
        description="Celery: a stage task sent this long ago that has not started is sent again (a broker restart "
        "without persistence loses queued tasks); the stage's lease makes a duplicate a no-op.",
    )
    isolate_compute: bool = Field(
        True,
        description="Embedded executor: run the stages that compute (evals, LoRA runs, curation) in a child "
        "process (spawned, niced), so that the API in this process stays fast while they run.",
    )

    @model_validator(mode="after")
    def _heartbeats_fit(self) -> ExecutorSettings:
        if self.stale_after_s <= 2 * self.heartbeat_s:
            raise ValueError(
                f"stale_after_s ({self.stale_after_s}) must exceed two heartbeats (heartbeat_s {self.heartbeat_s}): "
                "a live owner would be taken for dead"
            )
        return self

    eval_concurrency: int = Field(8, ge=1, description="Requests an eval keeps in flight.")
    eval_max_tokens: int = Field(128, ge=1, description="Answer length limit of eval requests.")


class ApiSettings(_Section):
    host: str = Field("127.0.0.1", description="Address flywheel serve listens on.")
    port: int = Field(8000, ge=1, le=65535)
    api_key_env: str | None = Field(
        None, description="Env var holding the API key; when set, every /api call needs 'Authorization: Bearer <key>'."
    )


class JudgeSettings(_Section):
    enabled: bool = Field(False, description="Ask an LLM judge to rate every eval sample.")
    base_url: str | None = Field(None, description="The judge's OpenAI-compatible endpoint, e.g. http://host:8000/v1.")
    model: str | None = Field(None, description="The judge's model name at that endpoint.")
    api_key_env: str | None = Field(None, description="The environment variable holding the judge's API key.")
    check_timeout_s: float = Field(
        20.0,
        gt=0,
        description="How long a job's judge check waits for an answer (it asks twice) before the judge counts as "
        "unavailable; LoRA runs and deployments wait for the check.",
    )
    required: bool = Field(
        False,
        description="What a job does when the judge does not answer its check: false, the judge is skipped and "
        "the job completes without judge metrics (the result and the API say why); true, the job fails before "
        "any training or deployment starts.",
    )
    price_per_1m_input_tokens: float | None = Field(
        None, ge=0, description="Price of 1M judge prompt tokens; null: the judge's cost is unknown."
    )
    price_per_1m_output_tokens: float | None = Field(None, ge=0, description="Price of 1M judge completion tokens.")

    @model_validator(mode="after")
    def _complete(self) -> JudgeSettings:
        if self.enabled and not (self.base_url and self.model):
            raise ValueError("base_url and model are required when the judge is enabled")
        _check_token_prices(self)
        return self


SMOLLM2_TOKENIZER = "builtin:smollm2"


class TeacherSettings(_Section):
    """The big model whose calls are logged (the one a candidate should replace): its price makes the savings
    computable. A price left at null is unknown, never guessed."""

    name: str | None = Field(None, description="Its name in reports, e.g. meta/llama-3.3-70b-instruct.")
    price_per_1m_input_tokens: float | None = Field(None, ge=0, description="Price of 1M prompt tokens; null: unknown.")
    price_per_1m_output_tokens: float | None = Field(
        None, ge=0, description="Price of 1M completion tokens; null: unknown."
    )
    tokenizer: str = Field(
        SMOLLM2_TOKENIZER,
        description="Counts the logged requests' and answers' tokens when the records carry no response.usage "
        "(the counts are then marked estimated): builtin:smollm2 (offline; another vocabulary than the "
        "teacher's, an approximation) or the teacher's own tokenizer as a folder or hub id.",
    )

    @model_validator(mode="after")
    def _paired(self) -> TeacherSettings:
        _check_token_prices(self)
        return self


class CostSettings(_Section):
    currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every price (and so of every reported cost)."
    )


class RecommendationSettings(_Section):
    """The rule that names the model to use: the cheapest candidate and eval type whose metric's 95% interval
    lower bound reaches ``min_ratio`` x the logged model's value (1.0: its answers are the reference)."""

    metric: str = Field("function_name_accuracy", description="The metric compared (one of the eval metrics).")
    min_ratio: float = Field(
        0.95, gt=0, le=1, description="Share of the logged model's value the interval's lower bound must reach."
    )

    @model_validator(mode="after")
    def _known_metric(self) -> RecommendationSettings:
        from dataflywheel.evaluation.metrics import SUMMARY_METRICS

        if self.metric not in SUMMARY_METRICS:
            raise ValueError(f"metric {self.metric!r} is unknown (known: {', '.join(SUMMARY_METRICS)})")
        return self


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a ``None`` in sys.modules blocks it)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


class MlflowSettings(_Section):
    """Export of every finished job to MLflow (one run per job, a nested run per candidate)."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (http(s)://server, sqlite:///path/mlflow.db, postgresql://...); "
        "null: no export. Needs the mlflow extra: pip install 'data-flywheel[mlflow]'.",
    )
    experiment: str = Field(
        "data-flywheel", min_length=1, description="Experiment the runs go to (created if missing)."
    )
    artifact_location: str | None = Field(
        None,
        description="Where a new experiment keeps its artifacts (a folder or URI); null: the server's default, "
        "or <home>/mlflow-artifacts with a local sqlite:/file: store.",
    )
    log_adapters: bool = Field(True, description="Upload each customized candidate's LoRA adapter folder.")
    http_timeout_s: int = Field(30, ge=1, le=3600, description="Seconds one request to a tracking server may take.")
    http_retries: int = Field(
        2, ge=0, le=10, description="Retries of a failed request to a tracking server (with backoff)."
    )

    @field_validator("tracking_uri")
    @classmethod
    def _client_installed(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.strip():
            return None
        if uri is not None and not _installed("mlflow"):
            raise ValueError(
                "is set but the mlflow package is not installed: pip install 'data-flywheel[mlflow]' "
                "(or leave mlflow.tracking_uri unset)"
            )
        return uri


class RedactMode(StrEnum):
    OFF = "off"
    """Records are stored as they come."""
    MASK = "mask"
    """Each value found becomes a typed placeholder: ``<EMAIL>``, ``<PHONE>``, ``<PERSON>``, ..."""
    PSEUDONYMIZE = "pseudonymize"
    """Each value found becomes a stand-in of its kind, the same one everywhere in the record (salted)."""


MIN_SALT_CHARS = 16


class PrivacySettings(_Section):
    """PII redaction before storage: applied to every record on its way into the log store, whatever the
    path (``flywheel logs load``, ``POST /api/logs``, curated write-backs) and the backend, and to
    ``flywheel datasets build --from-file``."""

    redact: RedactMode = Field(
        RedactMode.PSEUDONYMIZE,
        description="off | mask (typed placeholders) | pseudonymize (consistent stand-ins a model can still learn "
        "to copy into tool calls).",
    )
    salt_env: str | None = Field(
        None,
        description="Env var holding the secret salt of pseudonyms (at least 16 characters); null: a random salt "
        "kept in <home>/privacy-salt. Set it on every machine that loads into a shared store.",
    )
    kinds: list[PiiKind] = Field(
        default_factory=lambda: list(PiiKind),
        min_length=1,
        description="What is redacted: email, phone, card_number, iban, ip_address, person, address.",
    )

    @field_validator("salt_env")
    @classmethod
    def _salt_present(cls, env: str | None, info: ValidationInfo) -> str | None:
        if env is not None and not env.strip():
            return None
        if env is not None and info.data.get("redact") is RedactMode.PSEUDONYMIZE:
            value = os.environ.get(env)
            if not value:
                raise ValueError(f"environment variable {env} is not set (it holds the salt of pseudonyms)")
            if len(value) < MIN_SALT_CHARS:
                raise ValueError(f"the salt in {env} has {len(value)} characters; use at least {MIN_SALT_CHARS}")
        return env


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file; a missing explicit file or a non-mapping document is a ConfigError."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data = _read_yaml(path) if path is not None else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_yaml(path: Path) -> dict[str, Any]:
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
    """Everything data-flywheel can be told. See ``config/flywheel.yaml`` for each key's meaning."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    home: Path = Field(Path(".flywheel"), description="Data directory: logs, datasets, jobs, adapters.")
    curation_workers: int | None = Field(
        None, ge=0, le=64, description="Processes that inspect records in a build; null: one per core; 0: none."
    )
    log_store: LogStoreSettings = Field(default_factory=LogStoreSettings)
    job_store: JobStoreSettings = Field(default_factory=JobStoreSettings)
    data_split: DataSplitSettings = Field(default_factory=DataSplitSettings)
    icl: ICLSettings = Field(default_factory=ICLSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    lora: LoRASettings = Field(default_factory=LoRASettings)
    candidates: list[CandidateSettings] = Field(default_factory=list)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    recommendation: RecommendationSettings = Field(default_factory=RecommendationSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)

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


def with_overrides(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with some keys of some sections replaced (a job's or a build's overrides).

    ``with_overrides(s, data_split={"eval_size": 50})``. Values are validated like the file's; a bad one
    raises :class:`ConfigError` naming ``section.key``. None values are ignored (not overridden).
    """
    update: dict[str, Any] = {}
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
