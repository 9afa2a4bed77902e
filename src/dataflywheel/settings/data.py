"""Settings of the data: the log store, the job store, the dataset split, the embedder and ICL examples."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dataflywheel.records.chat import WorkloadType
from dataflywheel.settings.base import (
    Section,
    section_field,
)


class LogStoreBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    ELASTICSEARCH = "elasticsearch"


class LogStoreSettings(Section):
    """Where the logged records (the big model's requests and answers) are kept."""

    backend: LogStoreBackend = Field(
        LogStoreBackend.SQLITE,
        description="sqlite (embedded default, no service needed) | postgres | elasticsearch.",
    )
    sqlite_path: Path | None = Field(None, description="SQLite file; null: <home>/logs.db.")
    postgres_url: str | None = Field(
        None,
        description="PostgreSQL connection URL, required when backend is postgres, e.g. "
        "postgresql://flywheel@db.internal:5432/flywheel.",
    )
    postgres_table: str = Field(
        "flywheel_logs",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$",
        description="PostgreSQL table holding the records (created if missing).",
    )
    elasticsearch_url: str = Field("http://localhost:9200", description="Elasticsearch 8 URL (the blueprint's).")
    elasticsearch_index: str = Field(
        "flywheel", min_length=1, description="Elasticsearch index of the records (the blueprint's)."
    )
    elasticsearch_api_key_env: str | None = Field(
        None, description="Environment variable holding an Elasticsearch API key; null: no auth."
    )
    batch_size: int = Field(
        1000, ge=1, le=100_000, description="Records per write batch and per page when streaming reads."
    )

    @model_validator(mode="after")
    def _url_for_backend(self) -> LogStoreSettings:
        if self.backend is LogStoreBackend.POSTGRES and not self.postgres_url:
            raise ValueError("postgres_url is required when backend is 'postgres'")
        return self


class JobStoreSettings(Section):
    """Where jobs, their stages and events are kept."""

    url: str | None = Field(
        None, description="SQLAlchemy URL of the job store (sqlite:// or postgresql://); null: SQLite under home."
    )


class DedupMode(StrEnum):
    USER_TURNS = "user_turns"
    """Two records are duplicates when their user turns are equal (the blueprint's rule)."""
    FULL = "full"
    """Two records are duplicates when system prompt, tools and every message are equal."""


WorkloadTypeSetting = WorkloadType
"""The former name of :class:`~dataflywheel.records.chat.WorkloadType` (one enum: ``auto`` is its setting)."""


class DataSplitSettings(Section):
    """How the logged records become datasets: curation, then the eval / train / validation split."""

    eval_size: int = Field(
        100, ge=1, description="Records held out for evaluation (base, ICL and customized evals all use them)."
    )
    val_ratio: float = Field(
        0.1, ge=0.0, lt=1.0, description="Share of the remaining records used for validation during training."
    )
    min_total_records: int = Field(50, ge=1, description="Fewer usable records than this after curation is an error.")
    limit: int = Field(
        10_000, ge=1, description="Most records used, newest first, after validation, filtering and dedup."
    )
    random_seed: int | None = Field(
        42,
        description="Seed of the split: the same seed and data give byte-identical datasets. null draws one "
        "(recorded in the manifest, so any build can be reproduced).",
    )
    parse_function_arguments: bool = Field(
        True, description="Drop records whose tool-call arguments are not a JSON object."
    )
    keep_text_answers: bool = Field(
        True,
        description="In tool-calling workloads, keep records the big model answered in text, as class no_tool, so "
        "evaluations measure when a model should NOT call a tool.",
    )
    dedup: DedupMode = Field(
        DedupMode.USER_TURNS,
        description="What makes two records duplicates: user_turns (same user messages) | full (system, tools, "
        "all messages).",
    )
    max_tool_properties: int | None = Field(
        8,
        ge=1,
        description="Reject records with a tool of more parameter properties than this (a NIM limit); null: no limit.",
    )
    workload_type: WorkloadType = Field(
        WorkloadType.AUTO,
        description="auto (tool_calling when any answer calls a tool) | tool_calling | generic.",
    )

    @model_validator(mode="after")
    def _limit_vs_min(self) -> DataSplitSettings:
        if self.limit < self.min_total_records:
            raise ValueError(f"limit ({self.limit}) cannot be less than min_total_records ({self.min_total_records})")
        return self


class ExampleSelection(StrEnum):
    UNIFORM_DISTRIBUTION = "uniform_distribution"
    SEMANTIC_SIMILARITY = "semantic_similarity"


class EmbedderSettings(Section):
    """The text embedder of semantic example selection and of the embedding_similarity metric."""

    kind: Literal["local", "openai"] = Field(
        "local", description="local (sentence-transformers) | openai (any OpenAI-compatible /v1/embeddings endpoint)."
    )
    model: str = Field(
        "builtin:all-minilm-l6-v2",
        description="local: builtin:all-minilm-l6-v2, a folder or a hub id. openai: the model id.",
    )
    base_url: str | None = Field(None, description="openai: the endpoint's base URL, ending in /v1.")
    api_key_env: str | None = Field(
        None, description="openai: the environment variable holding the endpoint's API key; null: none sent."
    )
    batch_size: int = Field(64, ge=1, le=4096, description="Texts embedded per batch (per request to an endpoint).")
    input_type: str | None = Field(
        "query", description="Sent as input_type to endpoints that want it (NVIDIA NIM); null: not sent."
    )

    @model_validator(mode="after")
    def _url_for_endpoint(self) -> EmbedderSettings:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("base_url is required when kind is 'openai'")
        return self


class ICLSettings(Section):
    """In-context learning: the examples from the train split added to each eval record's prompt."""

    max_context_length: int = Field(8192, ge=256, description="Context window the prompt plus examples must fit in.")
    reserved_tokens: int = Field(2048, ge=0, description="Tokens of the context window kept free for the answer.")
    max_examples: int = Field(3, ge=0, le=64, description="Examples injected per eval record, at most.")
    min_examples: int = Field(
        1, ge=0, description="The fewest examples a record should get; records that fit fewer are counted and reported."
    )
    example_selection: ExampleSelection = Field(
        ExampleSelection.UNIFORM_DISTRIBUTION,
        description="uniform_distribution (the same short examples spread over tools) | semantic_similarity (the "
        "train records most similar to each eval record, covering other tools too).",
    )
    relevance_ratio: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="semantic_similarity: share of examples chosen by relevance; the rest cover tools not yet shown.",
    )
    tokenizer: str = Field(
        "builtin:all-minilm-l6-v2",
        description="Tokenizer that counts tokens: builtin:all-minilm-l6-v2, a tokenizer.json, a folder or a hub id.",
    )
    embedder: EmbedderSettings = section_field(EmbedderSettings)

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
