"""Where and in what precision a local model runs: the device, the dtype and the CPU cores torch may use.

Device and dtype (``"auto"``)
    CUDA when available, in bfloat16 (float16 on GPUs without bf16). On CPU, bfloat16 only when the CPU has
    native bf16 arithmetic (AVX512-BF16 or AMX, as torch reports it or ``/proc/cpuinfo`` lists it), else
    float32: without it torch converts bf16 in software, which only pays where memory bandwidth is all that
    counts. Measured on a 2-core AVX2 machine with SmolLM2-135M: bf16 decodes one stream 1.5x faster
    (0.039 vs 0.060 s/token) but a 16-row decode step takes 2.3x longer (0.25 vs 0.11 s) and a 256-token
    prefill 6x longer (2.9 vs 0.47 s); the engine's work is batches and prefills. Torch uses as many threads
    as the process may run on (:func:`available_cores`; torch's thread count is process-wide).

The local engine (:mod:`.engine`) and the trainer (:mod:`dataflywheel.training`) both resolve their device
and dtype here.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dataflywheel.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPE_ALIASES",
    "available_cores",
    "cpu_has_fast_bf16",
    "resolve_device",
    "resolve_dtype",
    "serving_dtype",
]


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU does bf16 arithmetic natively (AVX512-BF16 or AMX), so bf16 beats fp32 on it."""
    import torch

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):  # torch.cpu's (private) probes
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                if fn():
                    return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else CPU. Anything else is passed to ``torch.device``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r}: {exc}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    return resolved


DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bf16 on CUDA (fp16 without bf16 support), bf16 on CPUs with native bf16, else fp32."""
    import torch

    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu":
            return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
        return torch.float32
    name = DTYPE_ALIASES.get(dtype.lower())
    if name is None:
        raise ConfigError(f"dtype {dtype!r}: expected auto, float32, bfloat16 or float16")
    result: torch.dtype = getattr(torch, name)
    return result


def serving_dtype(choice: str, device: torch.device) -> str:
    """The dtype a model server loads its model in (``serving.dtype``), as :func:`resolve_dtype` takes it:
    ``auto`` is float32 on CPU and the engine's own ``auto`` (bf16) on CUDA; ``fastest`` is the engine's
    ``auto`` everywhere (bf16 on CPUs with native bf16); anything else as given.

    Why float32 on CPU: a server's answers are evals' samples, and in bf16 a greedy answer depends on the batch
    it was generated in. The rows of a batch share every matrix product, the packed prefill and the decode
    steps' attention over padded caches; in bf16 the roundings of those differ with the neighbours and their
    number, and a close argmax flips. Measured with SmolLM2-135M on the demo's eval requests (64 tokens, 2
    cores, avx512_bf16): in bf16, 4 of 12 answers were the same batched (16) and alone, and batches of 16 and
    of 8 agreed on 20 of 30; in float32 all 32 agreed (issue 15). So an eval's score depended on its
    concurrency. The alternatives cost more here: fixed batch shapes would pad every decode step to the largest
    batch and still leave the prefill's shapes (packed suffixes, the shared prefix's length) to the batch, and
    torch's CPU backend has no batch-invariant kernels. float32 costs about 1.45x the bf16 time of batched
    generation on such CPUs (issue 15: 0.51x against 0.74x of vLLM's throughput), nothing on CPUs without
    native bf16 (the engine's ``auto`` is float32 there anyway); ``serving.dtype: fastest`` buys it back where
    time matters more than reproducibility (the demo). CUDA keeps bf16, the norm there (vLLM serves there)."""
    if choice == "fastest":
        return "auto"
    if choice != "auto":
        return choice
    return "auto" if device.type == "cuda" else "float32"


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; all cores where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
