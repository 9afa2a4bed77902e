"""Tests of LoRA customization (helpers: small synthetic training rows)."""

from __future__ import annotations

from typing import Any

from dataflywheel.curation.training_format import to_training_row
from dataflywheel.synth.generator import SynthConfig, generate


def routing_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` training rows of the synthetic routing workload (one shared system prompt + 4 tools)."""
    return [to_training_row(r) for r in generate(SynthConfig(records=n, seed=seed))]
