"""Supervised LoRA fine-tuning of a local causal LM on a dataset's training rows.

:class:`LoRATrainer` runs our own training loop (not ``transformers.Trainer``) because the loss of a routing
workload can be computed far more cheaply than a generic trainer does (see :mod:`dataflywheel.training.loss`):

* each optimizer step takes ``batch_size`` examples (shuffled per epoch with ``seed + epoch``), split into
  ``gradient_accumulation_steps`` micro-batches; the loss is the mean over the step's completion tokens;
* a micro-batch whose prompts share at least ``min_prefix_tokens`` leading tokens runs that prefix once;
* AdamW, gradient clipping at 1.0, warmup then constant/linear/cosine learning rate;
* class balance (``class_balance``): each epoch draws rare classes more often (:mod:`.balance`);
* validation loss on the val rows after each epoch; with ``select_best_epoch`` also function-name accuracy on
  them (:mod:`.validation`): the best epoch's adapter is kept (``best/``) and is the one published, and
  training stops after ``patience`` epochs without a better score (the curve is in the metrics);
* progress after every step through a callback (epochs, steps, percent, loss, tokens/s, ETA);
* cancellation checked between micro-batches (a few seconds at most on CPU);
* a checkpoint after each epoch (adapter weights, optimizer, scheduler, RNG); running again on the same
  ``run_dir`` continues from the last one (after a crash, or a cancel);
* the final adapter is written to ``run_dir/adapter`` only when the run completes (written to a temporary
  folder, then renamed, so no half-written adapter ever exists there).

Device and precision (``auto``): CUDA in bf16 when a GPU is there; on CPU bf16 only with native bf16
arithmetic (AVX512-BF16/AMX), else fp32 (the engine's rule: without it bf16 is emulated and slower for
batched work); LoRA weights stay fp32. Threads: every core the process may use.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflywheel.errors import FlywheelError
from dataflywheel.models.codec import ToolCallCodec
from dataflywheel.models.engine import available_cores, resolve_device, resolve_dtype
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.training.balance import epoch_order, epoch_rng, row_class
from dataflywheel.training.config import TrainConfig
from dataflywheel.training.examples import TrainingDataError, tokenize_rows
from dataflywheel.training.frozen import FrozenLayers, frozen_split
from dataflywheel.training.history import EpochRecord, History
from dataflywheel.training.loss import Example, batch_loss, frozen_batch_loss, shared_prefix_len, target_weight
from dataflywheel.training.progress import TrainProgress
from dataflywheel.training.run_metrics import run_metrics
from dataflywheel.training.validation import score_rows

if TYPE_CHECKING:
    import torch

__all__ = ["LoRATrainer", "TrainProgress", "TrainResult", "TrainingCancelled", "TrainingError"]

ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
BEST_DIR = "best"
RUN_FILE = "run.json"
METRICS_FILE = "training_metrics.json"


class TrainingError(FlywheelError):
    """A training run cannot start or failed (bad data, a model that does not load, a mismatched resume)."""


class TrainingCancelled(FlywheelError):
    """The run was cancelled between two micro-batches; checkpoints of finished epochs are kept."""


@dataclass
class TrainResult:
    adapter_dir: Path
    metrics: JsonObject = field(default_factory=dict)
    """What the run measured (``training_metrics.json`` in the adapter folder)."""


ProgressFn = Callable[[TrainProgress], None]
CancelFn = Callable[[], bool]


def _never() -> bool:
    return False


def _ignore(_: TrainProgress) -> None:
    return None


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """The learning-rate multiplier before optimizer step ``step`` (0-based) of ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, order: Sequence[int] | None = None
) -> list[list[int]]:
    """The example indices of each step of ``epoch``: ``order`` (a class-balanced draw), else a seeded
    shuffle, cut into ``batch_size`` chunks."""
    if order is None:
        shuffled = list(range(n))
        epoch_rng(seed, epoch).shuffle(shuffled)
        order = shuffled
    return [list(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]


def top_layers(num_layers: int | None, fraction: float) -> list[int] | None:
    """The decoder layers LoRA adapts: the top ``fraction`` of them (None: every layer). Leaving the lower
    layers alone means no backward pass runs through them at all: a step costs ~1/3 less at 0.5."""
    if fraction >= 1.0 or not num_layers:
        return None
    count = max(1, math.ceil(num_layers * fraction))
    return list(range(num_layers - count, num_layers))


def linear_module_names(model: Any) -> list[str]:
    """Names of the linear layers inside the decoder layers (what peft's ``all-linear`` means: the output
    head left out)."""
    import torch

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and ".layers." in name
    }
    return sorted(names)


def by_length(batches: list[list[int]], lengths: Sequence[int], window: int = 4) -> list[list[int]]:
    """Regroup each run of ``window`` batches so that rows of similar length share a batch (less padding in
    the suffixes), keeping which examples the epoch draws and the batch sizes; deterministic."""
    out: list[list[int]] = []
    for start in range(0, len(batches), window):
        group = batches[start : start + window]
        rows = sorted((i for batch in group for i in batch), key=lambda i: (lengths[i], i))
        sizes = [len(b) for b in group]
        at = 0
        regrouped = []
        for size in sizes:
            regrouped.append(rows[at : at + size])
            at += size
        out.extend(regrouped[k] for k in _interleave(len(regrouped)))
    return out


def _interleave(n: int) -> list[int]:
    """0, n-1, 1, n-2, ...: short and long batches alternate (steady memory, steady step times)."""
    order, low, high = [], 0, n - 1
    while low <= high:
        order.append(low)
        if high != low:
            order.append(high)
        low, high = low + 1, high - 1
    return order


def split_micro(batch: Sequence[int], parts: int) -> list[list[int]]:
    """``batch`` split into ``parts`` nearly equal micro-batches (fewer when it is small)."""
    parts = max(1, min(parts, len(batch)))
    size = math.ceil(len(batch) / parts)
    return [list(batch[i : i + size]) for i in range(0, len(batch), size)]


class LoRATrainer:
    """One LoRA run of a model folder on tokenized rows, with its state in ``run_dir``."""

    def __init__(
        self,
        model_dir: str,
        config: TrainConfig,
        run_dir: Path,
        *,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> None:
        self.model_dir = model_dir
        self.config = config
        self.run_dir = Path(run_dir)
        self._progress = progress or _ignore
        self._should_cancel = should_cancel or _never

    # ---- public --------------------------------------------------------------------------------------
    def train(
        self, train_rows: Sequence[Mapping[str, object]], val_rows: Sequence[Mapping[str, object]] = ()
    ) -> TrainResult:
        """Train (or resume) and return the adapter folder; raises :class:`TrainingCancelled` when cancelled."""
        import torch

        cfg = self.config
        started = time.monotonic()
        self._emit("loading", 0, 0, 0, started)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._check_run_file()
        torch.set_num_threads(cfg.threads or available_cores())
        device = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, device)
        model, tokenizer = self._load(device, dtype)
        codec = ToolCallCodec(tokenizer)
        train = tokenize_rows(train_rows, codec, cfg.max_seq_length)
        val = tokenize_rows(val_rows, codec, cfg.max_seq_length)
        if not train.examples:
            reasons = "; ".join(f"row {s.index}: {s.reason}" for s in train.skipped[:3])
            raise TrainingDataError(
                f"no usable training row ({len(train.skipped)} skipped{': ' + reasons if reasons else ''})"
            )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        labels = [row_class(train_rows[e.index]) for e in train.examples]
        lengths = [e.tokens for e in train.examples]
        scored_val = [val_rows[e.index] for e in val.examples] if cfg.select_best_epoch else []
        frozen = self._frozen_layers(model, train.examples, pad_id, device)
        val_frozen = frozen.sibling() if frozen is not None and frozen.covers(val.examples) else None

        steps_per_epoch = math.ceil(len(train.examples) / cfg.batch_size)
        total_steps = steps_per_epoch * cfg.epochs
        warmup = round(cfg.warmup_ratio * total_steps)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, total_steps, warmup, cfg.lr_schedule)
        )
        history = History()
        start_epoch = self._resume(model, optimizer, scheduler, history)
        step = start_epoch * steps_per_epoch
        trained_tokens = 0
        computed_tokens = 0
        prefix_batches = 0
        micro_batches = 0
        train_time = 0.0
        last_loss = history.last.train_loss if history.last else None
        val_loss = history.last.val_loss if history.last else None
        self._emit("training", start_epoch, step, total_steps, started, loss=last_loss, val_loss=val_loss)

        for epoch in range(start_epoch, cfg.epochs):
            if history.stopped_early:
                break
            model.train()
            epoch_loss, epoch_tokens = 0.0, 0.0
            order = epoch_order(labels, cfg.balance_power, cfg.seed, epoch) if cfg.class_balance else None
            batches = epoch_batches(len(train.examples), cfg.batch_size, cfg.seed, epoch, order)
            if cfg.length_grouping:
                batches = by_length(batches, lengths)
            for batch in batches:
                t0 = time.monotonic()
                rows = [train.examples[i] for i in batch]
                targets = target_weight(rows, cfg.decision_weight)
                step_loss = 0.0
                for micro in split_micro(batch, cfg.gradient_accumulation_steps):
                    if self._should_cancel():
                        optimizer.zero_grad(set_to_none=True)
                        raise TrainingCancelled(f"training cancelled at step {step + 1} of {total_steps}")
                    micro_rows = [train.examples[i] for i in micro]
                    if frozen is not None:
                        part = frozen_batch_loss(
                            model,
                            micro_rows,
                            frozen,
                            decision_weight=cfg.decision_weight,
                            prefix_gradients=cfg.prefix_gradients,
                            reuse_prefix=step % cfg.prefix_refresh_steps != 0,
                            prompt_gradients=cfg.prompt_gradients,
                        )
                    else:
                        part = batch_loss(
                            model,
                            micro_rows,
                            pad_id=pad_id,
                            device=device,
                            min_prefix_tokens=self._min_prefix_tokens,
                            decision_weight=cfg.decision_weight,
                            prefix_gradients=cfg.prefix_gradients,
                        )
                    (part.loss_sum / targets).backward()  # type: ignore[no-untyped-call]
                    step_loss += float(part.loss_sum.detach())
                    computed_tokens += part.computed_tokens
                    prefix_batches += part.prefix_tokens > 0
                    micro_batches += 1
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                train_time += time.monotonic() - t0
                trained_tokens += sum(r.tokens for r in rows)
                last_loss = step_loss / targets
                epoch_loss += step_loss
                epoch_tokens += targets
                done_here = step - start_epoch * steps_per_epoch
                self._emit(
                    "training",
                    epoch,
                    step,
                    total_steps,
                    started,
                    loss=last_loss,
                    val_loss=val_loss,
                    tokens_per_s=trained_tokens / train_time if train_time else None,
                    eta_s=(total_steps - step) * train_time / done_here if done_here else None,
                )
            if val.examples:
                self._emit("validating", epoch, step, total_steps, started, loss=last_loss, val_loss=val_loss)
                val_loss = self._validate(model, val.examples, pad_id, device, val_frozen)
            entry = EpochRecord(epoch + 1, epoch_loss / max(1, epoch_tokens), val_loss, step)
            if scored_val and (epoch + 1 > cfg.eval_delay or epoch + 1 == cfg.epochs):
                self._emit("scoring", epoch + 1, step, total_steps, started, loss=last_loss, val_loss=val_loss)
                score = score_rows(
                    model,
                    tokenizer,
                    scored_val,
                    device=str(device),
                    dtype=str(dtype).removeprefix("torch."),
                    max_tokens=cfg.val_max_tokens,
                )
                model.train()
                entry.val_function_name_accuracy, entry.val_per_class = score.accuracy, score.per_class
                if history.track_best(entry, cfg.patience):
                    self._save_best(model)
            history.epochs.append(entry)
            self._emit("checkpointing", epoch + 1, step, total_steps, started, loss=last_loss, val_loss=val_loss)
            self._save_checkpoint(model, optimizer, scheduler, epoch + 1, step, history)

        final_epoch = history.last.epoch if history.last else 0
        if history.best is not None and history.best.epoch != final_epoch:
            self._load_best(model)
        metrics = run_metrics(
            self.model_dir,
            self.config,
            train,
            labels,
            val,
            history,
            total_steps=total_steps,
            trained_tokens=trained_tokens,
            train_time=train_time,
            computed_tokens=computed_tokens,
            prefix_batches=prefix_batches,
            micro_batches=micro_batches,
            device=device,
            dtype=dtype,
            codec=codec,
            runtime=time.monotonic() - started,
        )
        metrics["frozen_layers"] = frozen.split if frozen is not None else None
        adapter = self._write_adapter(model, tokenizer, metrics)
        self._emit(
            "done",
            cfg.epochs,
            total_steps,
            total_steps,
            started,
            loss=last_loss,
            val_loss=val_loss,
            tokens_per_s=trained_tokens / train_time if train_time else None,
            eta_s=0.0,
        )
        return TrainResult(adapter_dir=adapter, metrics=metrics)

    # ---- parts ---------------------------------------------------------------------------------------
    def _emit(self, phase: str, epochs: int, steps: int, total: int, started: float, **extra: Any) -> None:
        self._progress(
            TrainProgress(
                stage=phase,
                epochs_completed=epochs,
                total_epochs=self.config.epochs,
                done=steps,
                total=total,
                elapsed_s=time.monotonic() - started,
                **extra,
            )
        )

    def _check_run_file(self) -> None:
        """A run folder belongs to one model and one configuration: resuming it with others is an error."""
        path = self.run_dir / RUN_FILE
        config: JsonObject = self.config.model_dump(mode="json")
        identity = {"model_dir": str(self.model_dir), "config": config}
        ignore = {"threads", "device"}
        if path.is_file():
            stored = json.loads(path.read_text())
            mismatched = sorted(k for k in config if k not in ignore and stored["config"].get(k) != config[k])
            if stored.get("model_dir") != identity["model_dir"] or mismatched:
                what = ", ".join(mismatched) or "model"
                raise TrainingError(f"{self.run_dir} holds a run with a different {what}: use a new run folder")
        else:
            path.write_text(json.dumps(identity, indent=2, sort_keys=True))

    def _load(self, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.config
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
            base: Any = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"cannot load model {self.model_dir}: {exc}") from exc
        base.to(device)
        base.config.use_cache = False
        torch.manual_seed(cfg.seed)
        layers = top_layers(getattr(base.config, "num_hidden_layers", None), cfg.layers_fraction)
        targets = cfg.target_modules
        if layers is not None and targets == "all-linear":  # peft wants names with layers_to_transform
            targets = linear_module_names(base)
        lora = LoraConfig(
            r=cfg.adapter_dim,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
            layers_to_transform=layers,
        )
        try:
            model = get_peft_model(base, lora)
        except ValueError as exc:
            raise TrainingError(f"lora.target_modules {cfg.target_modules!r}: {exc}") from exc
        return model, tokenizer

    def _frozen_layers(
        self, model: Any, examples: Sequence[Example], pad_id: int, device: torch.device
    ) -> FrozenLayers | None:
        """The cache of the layers below the adapter (``frozen_cache``), or None when every layer is adapted
        or the model's decoder is not of the usual shape."""
        cfg = self.config
        if not cfg.frozen_cache:
            return None
        adapted = top_layers(getattr(model.config, "num_hidden_layers", None), cfg.layers_fraction)
        split = frozen_split(model, adapted)
        if split is None:
            return None
        prefix = shared_prefix_len(examples) if cfg.shared_prefix else 0
        if prefix < cfg.min_prefix_tokens:
            prefix = 0
        return FrozenLayers(model, split, tuple(examples[0].prompt[:prefix]), device, pad_id=pad_id)

    def _validate(
        self,
        model: Any,
        examples: Sequence[Example],
        pad_id: int,
        device: torch.device,
        frozen: FrozenLayers | None = None,
    ) -> float:
        """Mean completion-token loss of the validation rows; with ``frozen`` (the validation rows' own cache of
        the lower layers) only the adapted layers run, and the prefix's once per call."""
        import torch

        cfg = self.config
        micro = max(1, math.ceil(cfg.batch_size / cfg.gradient_accumulation_steps))
        model.eval()
        total, tokens = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(examples), micro):
                if self._should_cancel():
                    raise TrainingCancelled("training cancelled during validation")
                rows = examples[i : i + micro]
                if frozen is not None:
                    part = frozen_batch_loss(model, rows, frozen, prefix_gradients=False, reuse_prefix=i > 0)
                else:
                    part = batch_loss(
                        model, rows, pad_id=pad_id, device=device, min_prefix_tokens=self._min_prefix_tokens
                    )
                total += float(part.loss_sum)
                tokens += part.target_tokens
        model.train()
        return total / max(1, tokens)

    @property
    def _min_prefix_tokens(self) -> int | None:
        """What :func:`batch_loss` takes as ``min_prefix_tokens``: None (never) unless ``shared_prefix``."""
        return self.config.min_prefix_tokens if self.config.shared_prefix else None

    def _save_best(self, model: Any) -> None:
        """Keep the adapter of the best epoch (:meth:`History.track_best`) as ``best/``."""
        tmp = self.run_dir / f".{BEST_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        shutil.rmtree(self.run_dir / BEST_DIR, ignore_errors=True)
        os.replace(tmp, self.run_dir / BEST_DIR)

    def _load_best(self, model: Any) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(str(self.run_dir / BEST_DIR / "adapter_model.safetensors"))
        set_peft_model_state_dict(model, weights)

    def _checkpoints(self) -> list[Path]:
        folder = self.run_dir / CHECKPOINTS_DIR
        if not folder.is_dir():
            return []
        done = [p for p in folder.iterdir() if p.name.startswith("epoch-") and (p / "state.json").is_file()]
        return sorted(done, key=lambda p: int(p.name.split("-")[1]))

    def _save_checkpoint(
        self, model: Any, optimizer: Any, scheduler: Any, epoch: int, step: int, history: History
    ) -> None:
        import torch

        folder = self.run_dir / CHECKPOINTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".epoch-{epoch:04d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()},
            tmp / "trainer_state.pt",
        )
        # state.json last: a checkpoint without it is incomplete and ignored.
        state = {"epoch": epoch, "step": step, "history": history.to_json()}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        target = folder / f"epoch-{epoch:04d}"
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        for old in self._checkpoints()[:-1]:  # keep the last one: it is all a resume needs
            shutil.rmtree(old, ignore_errors=True)

    def _resume(self, model: Any, optimizer: Any, scheduler: Any, history: History) -> int:
        """Load the last complete checkpoint, if any; return the epochs it covers."""
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        checkpoints = self._checkpoints()
        if not checkpoints:
            return 0
        last = checkpoints[-1]
        state = json.loads((last / "state.json").read_text())
        weights = load_file(str(last / "adapter_model.safetensors"))
        set_peft_model_state_dict(model, weights)
        trainer_state = torch.load(last / "trainer_state.pt", weights_only=False)
        optimizer.load_state_dict(trainer_state["optimizer"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        torch.set_rng_state(trainer_state["rng"])
        stored = History.from_json(state["history"])
        history.epochs, history.best, history.stopped_early = stored.epochs, stored.best, stored.stopped_early
        history.resumed_from_epoch = int(state["epoch"])
        return int(state["epoch"])

    def _write_adapter(self, model: Any, tokenizer: Any, metrics: JsonObject) -> Path:
        target = self.run_dir / ADAPTER_DIR
        tmp = self.run_dir / f".{ADAPTER_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))  # the codec it was trained with travels with it
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target
