"""Training throughput: our LoRA trainer (plain and shared-prefix loss) vs ``transformers.Trainer`` + peft.

    python benchmarks/training.py [--model smollm2-135m-instruct] [--batch-size 4] [--steps 4] [--lora-rank 16]

Builds ``batch_size x (steps + 1)`` training rows (``{"messages": [system, user, assistant tool call],
"tools": [...]}``) from synthetic customer-service records, tokenized once with our codec (~1,100 tokens an
example with SmolLM2's tokenizer, ~990 of them the same system prompt + tool schemas in every example). Then
trains one epoch of ``steps + 1`` optimizer steps on the same model, dtype, threads, LoRA settings (rank,
alpha, dropout, ``all-linear``), learning rate and schedule, three ways, one after the other in this process:

* **baseline**: a plain ``transformers.Trainer`` on a ``peft`` LoRA model, batch ``B``, no gradient
  accumulation, a collator that right-pads and sets the labels of prompt tokens to -100, the same token ids;
* **ours, plain**: :class:`~dataflywheel.training.LoRATrainer` with ``shared_prefix=False``;
* **ours, shared prefix**: the same with ``shared_prefix=True`` (the shared prompt prefix runs once a step).

All three see the same batches in the same order (the baseline's dataset is laid out in our trainer's seeded
shuffle order and read with ``train_sampling_strategy="sequential"``), so their step losses are comparable:
step 1 (LoRA B is zero: the base model's loss) should agree to rounding, later steps closely.

Measured: example tokens (prompt + completion of the examples trained, padding excluded) per second of wall
time from the end of step 1 to the end of the last step (step 1 is warm-up; model loading, tokenization,
checkpoint and adapter writing are outside the window). ``tokens run/step`` is what the forward pass covers
(padding included, the shared prefix once); ``peak RSS GB`` is the process's resident memory sampled during
a run (the runs share the process: a later run's figure includes what the process still holds). Targets:
ours plain >= 1.0x the baseline, shared prefix >= 3x. The default run (SmolLM2-135M, batch 4, 4 measured
steps) takes ~4 minutes on 2 idle cores. Raise ``--batch-size`` to see the shared-prefix ratio grow (the
prefix costs the same for any batch size), within memory: activations take ~2.3 MB per token run (SmolLM2,
bf16), so at batch 4 the baseline peaks at ~15 GB and ours plain at ~12 GB, ours shared prefix at ~5 GB;
batch 6 or more does not fit both full-length configurations in 23 GB.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
IGNORE = -100


@dataclass
class Run:
    name: str
    step_ends: list[float]
    """``perf_counter`` at the end of every optimizer step."""
    step_tokens: list[int]
    """Example tokens (no padding) of every step."""
    step_run_tokens: list[int]
    """Tokens the forward pass covered in every step (padding included, a shared prefix once)."""
    losses: list[float]
    """Mean completion-token loss of every step."""
    load_s: float
    peak_rss_gb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def measured_steps(self) -> int:
        return len(self.step_ends) - 1

    @property
    def seconds(self) -> float:
        return self.step_ends[-1] - self.step_ends[0]

    @property
    def tokens(self) -> int:
        return sum(self.step_tokens[1:])

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds

    @property
    def s_per_step(self) -> float:
        return self.seconds / self.measured_steps

    @property
    def step_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.step_ends, self.step_ends[1:], strict=False)]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["step_ends"]
        out.update(
            measured_steps=self.measured_steps,
            measured_seconds=self.seconds,
            measured_tokens=self.tokens,
            tokens_per_s=self.tokens_per_s,
            s_per_step=self.s_per_step,
            step_seconds=self.step_seconds,
        )
        return out


class PeakRSS:
    """The process's peak resident memory while the block runs (sampled every 0.1 s from /proc; 0 elsewhere)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> PeakRSS:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` training rows from synthetic routing traffic (every record a tool call)."""
    from dataflywheel.curation.training_format import to_training_row
    from dataflywheel.synth.generator import SynthConfig, generate

    return [to_training_row(r) for r in generate(SynthConfig(records=n, seed=seed))]


def step_batches(n: int, cfg: Any) -> list[list[int]]:
    """Example indices of each step, in the order our trainer takes them (epoch 0's seeded shuffle)."""
    from dataflywheel.training.trainer import epoch_batches

    return epoch_batches(n, cfg.batch_size, cfg.seed, 0)


# ---- baseline: transformers.Trainer + peft ----------------------------------------------------------------
def run_baseline(model_dir: str, examples: list[Any], cfg: Any, dtype: Any, pad_id: int, workdir: Path) -> Run:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    started = time.perf_counter()
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    base.config.use_cache = False
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.adapter_dim,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    load_s = time.perf_counter() - started

    batches = step_batches(len(examples), cfg)
    ordered = [examples[i] for batch in batches for i in batch]
    features = [
        {"input_ids": list(e.prompt + e.completion), "labels": [IGNORE] * len(e.prompt) + list(e.completion)}
        for e in ordered
    ]

    def collate(items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in items)
        ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        for i, f in enumerate(items):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            mask[i, :n] = 1
            labels[i, :n] = torch.tensor(f["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    step_ends: list[float] = []
    losses: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step_ends.append(time.perf_counter())

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    total_steps = len(batches)
    training_args = TrainingArguments(
        output_dir=str(workdir / "baseline"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_schedule,
        warmup_steps=round(cfg.warmup_ratio * total_steps),  # our trainer's rounding
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=total_steps,
        num_train_epochs=1,
        seed=cfg.seed,
        # Logged every step only to read the step loss: after on_step_end, a scalar .item() (negligible).
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        train_sampling_strategy="sequential",  # the batches of our trainer's shuffle, in its order
        use_cpu=True,
        bf16=False,
    )
    trainer = Trainer(
        model=model, args=training_args, train_dataset=features, data_collator=collate, callbacks=[StepTimes()]
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log to stdout
    trainer.train()
    rows = [
        [ordered[i] for i in range(s * cfg.batch_size, min(len(ordered), (s + 1) * cfg.batch_size))]
        for s in range(total_steps)
    ]
    run = Run(
        name="baseline: HF Trainer + peft",
        step_ends=step_ends,
        step_tokens=[sum(e.tokens for e in r) for r in rows],
        step_run_tokens=[len(r) * max(e.tokens for e in r) for r in rows],
        losses=losses,
        load_s=load_s,
    )
    del trainer, model, base
    gc.collect()
    return run


# ---- ours ---------------------------------------------------------------------------------------------------
def run_ours(model_dir: str, rows: list[dict[str, Any]], examples: list[Any], cfg: Any, workdir: Path) -> Run:
    from dataflywheel.training.loss import shared_prefix_len
    from dataflywheel.training.trainer import LoRATrainer, TrainProgress

    step_ends: list[float] = []
    losses: list[float] = []
    marks: dict[str, float] = {}

    def progress(p: TrainProgress) -> None:
        now = time.perf_counter()
        if p.phase == "training" and p.steps_completed == 0:
            marks["training"] = now
        elif p.phase == "training" and p.loss is not None and p.steps_completed > len(step_ends):
            step_ends.append(now)
            losses.append(p.loss)

    name = "ours, shared prefix" if cfg.shared_prefix else "ours, plain"
    started = time.perf_counter()
    result = LoRATrainer(model_dir, cfg, workdir / name.replace(", ", "-").replace(" ", "_"), progress=progress).train(
        rows
    )
    steps = [[examples[i] for i in batch] for batch in step_batches(len(examples), cfg)]
    run_tokens = []
    for batch in steps:
        prefix = shared_prefix_len(batch) if cfg.shared_prefix and len(batch) > 1 else 0
        if prefix < cfg.min_prefix_tokens:
            prefix = 0
        run_tokens.append(prefix + len(batch) * max(e.tokens - prefix for e in batch))
    metrics = result.metrics
    run = Run(
        name=name,
        step_ends=step_ends,
        step_tokens=[sum(e.tokens for e in batch) for batch in steps],
        step_run_tokens=run_tokens,
        losses=losses,
        load_s=marks.get("training", started) - started,
        extra={
            k: metrics.get(k)
            for k in (
                "tokens_per_s",
                "train_seconds",
                "trained_tokens",
                "computed_tokens",
                "shared_prefix_micro_batches",
                "micro_batches",
                "dtype",
            )
        },
    )
    assert metrics["trained_tokens"] == sum(run.step_tokens), "example token counts disagree with the trainer's"
    gc.collect()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="candidate name, alias or folder")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per optimizer step")
    parser.add_argument("--steps", type=int, default=4, help="measured optimizer steps (one more runs as warm-up)")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=16)
    parser.add_argument("--lora-dropout", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--lr-schedule", default="cosine", choices=["constant", "linear", "cosine"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic records")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument(
        "--dtype", default="auto", help="auto (bf16 on CPUs with native bf16, else fp32), float32, bfloat16"
    )
    parser.add_argument("--home", default=str(REPO / ".flywheel"), help="flywheel home (model cache)")
    parser.add_argument("--skip-baseline", action="store_true", help="only our two configurations")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)

    import torch
    import transformers
    from transformers import AutoTokenizer

    from dataflywheel.models.codec import ToolCallCodec
    from dataflywheel.models.engine import available_cores, resolve_dtype
    from dataflywheel.models.registry import local_model_dir, resolve_model
    from dataflywheel.settings import load_settings
    from dataflywheel.training.config import TrainConfig
    from dataflywheel.training.examples import tokenize_rows
    from dataflywheel.training.loss import shared_prefix_len

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    settings = load_settings(home=args.home)
    model_dir = local_model_dir(resolve_model(args.model, settings), settings)
    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    dtype = resolve_dtype(args.dtype, torch.device("cpu"))
    dtype_name = str(dtype).removeprefix("torch.")
    cfg = TrainConfig(
        epochs=1,
        batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=args.learning_rate,
        lr_schedule=args.lr_schedule,
        seed=args.seed,
        adapter_dim=args.lora_rank,
        alpha=args.lora_alpha,
        dropout=args.lora_dropout,
        target_modules="all-linear",
        device="cpu",
        dtype=dtype_name,
        threads=threads,
    )

    n = args.batch_size * (args.steps + 1)
    rows = build_rows(n, args.data_seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenized = tokenize_rows(rows, ToolCallCodec(tokenizer), cfg.max_seq_length)
    if tokenized.skipped:
        _log(f"error: {len(tokenized.skipped)} rows could not be tokenized: {tokenized.skipped[:3]}")
        return 1
    examples = tokenized.examples
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    lengths = [e.tokens for e in examples]
    completions = [len(e.completion) for e in examples]
    shared = shared_prefix_len(examples)
    header = (
        f"model {args.model} on cpu {dtype_name}, {threads} threads; {n} examples ({args.steps + 1} steps of "
        f"{args.batch_size}, step 1 warm-up): {min(lengths)}-{max(lengths)} tokens (mean "
        f"{sum(lengths) / n:.0f}, completion mean {sum(completions) / n:.0f}), {shared} shared by all; "
        f"LoRA r={cfg.adapter_dim} alpha={cfg.alpha} dropout={cfg.dropout} all-linear, lr {cfg.learning_rate} "
        f"{cfg.lr_schedule}"
    )
    _log(header)

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        workdir = Path(tmp)
        if not args.skip_baseline:
            _log("training: baseline (transformers.Trainer + peft) ...")
            with PeakRSS() as rss:
                runs.append(run_baseline(model_dir, examples, cfg, dtype, pad_id, workdir))
            runs[-1].peak_rss_gb = rss.peak / 2**30
            _log(f"  {runs[-1].s_per_step:.1f} s/step")
        for flag in (False, True):
            _log(f"training: ours, shared_prefix={flag} ...")
            with PeakRSS() as rss:
                runs.append(
                    run_ours(model_dir, rows, examples, cfg.model_copy(update={"shared_prefix": flag}), workdir)
                )
            runs[-1].peak_rss_gb = rss.peak / 2**30
            _log(f"  {runs[-1].s_per_step:.1f} s/step")
    total_s = time.perf_counter() - started

    baseline = runs[0] if not args.skip_baseline else None
    by = {r.name: r for r in runs}
    plain, sharedp = by["ours, plain"], by["ours, shared prefix"]
    if args.json:
        out = {
            "model": args.model,
            "dtype": dtype_name,
            "threads": threads,
            "batch_size": args.batch_size,
            "measured_steps": args.steps,
            "examples": n,
            "shared_prefix_tokens": shared,
            "config": cfg.model_dump(mode="json"),
            "runs": [r.to_dict() for r in runs],
            "ratios": {
                "plain": plain.tokens_per_s / baseline.tokens_per_s if baseline else None,
                "shared_prefix": sharedp.tokens_per_s / baseline.tokens_per_s if baseline else None,
                "shared_prefix_vs_plain": sharedp.tokens_per_s / plain.tokens_per_s,
            },
            "total_seconds": total_s,
        }
        print(json.dumps(out, indent=2))
        return 0

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{args.model}, cpu {dtype_name}, {threads} threads: batch {args.batch_size}, {args.steps} measured "
        f"steps (+1 warm-up), ~{sum(lengths) / n:.0f} tokens/example, {shared} shared",
        title_justify="left",
    )
    for col in (
        "configuration",
        "steps",
        "s/step",
        "tokens/s",
        "vs baseline",
        "tokens run/step",
        "loss step 1",
        "loss last",
        "setup s",
        "peak RSS GB",
    ):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    reference = baseline or plain
    for r in runs:
        table.add_row(
            r.name,
            str(r.measured_steps),
            f"{r.s_per_step:.2f}",
            f"{r.tokens_per_s:.1f}",
            f"{r.tokens_per_s / reference.tokens_per_s:.2f}x" if baseline else "-",
            f"{sum(r.step_run_tokens[1:]) / r.measured_steps:.0f}",
            f"{r.losses[0]:.4f}" if r.losses else "-",
            f"{r.losses[-1]:.4f}" if r.losses else "-",
            f"{r.load_s:.1f}",
            f"{r.peak_rss_gb:.1f}",
        )
    console = Console()
    console.width = max(console.width, 150)  # not a terminal (a pipe, a log): rich assumes 80 columns
    console.print(table)
    for r in runs:
        print(
            f"{r.name}: step losses {', '.join(f'{x:.4f}' for x in r.losses)}; "
            f"measured step seconds {', '.join(f'{x:.1f}' for x in r.step_seconds)}"
        )
    print(f"shared prefix vs plain (ours): {sharedp.tokens_per_s / plain.tokens_per_s:.2f}x; total {total_s:.0f} s")
    if baseline:
        p, s = plain.tokens_per_s / baseline.tokens_per_s, sharedp.tokens_per_s / baseline.tokens_per_s
        met = "met" if p >= 1.0 and s >= 3.0 else "NOT met"
        print(f"ours/baseline: plain {p:.1f}x, shared-prefix {s:.1f}x (targets >= 1.0x and >= 3x: {met})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
