"""The loop V's and M's training share: resume, epochs of batches, averaged metrics, atomic checkpoints.

A stage supplies a model, its optimiser, a streaming dataset (with ``set_epoch``) and its loader, and a
``step`` function doing one optimiser step on one batch; :func:`run_training` does the rest:

- resume: when the checkpoint file exists, the model, optimiser, torch's RNG and the loop position
  (step, epoch, batches consumed in that epoch) are restored, and the batches already consumed in that
  epoch are read and skipped, so the run continues exactly as an uninterrupted one would (on the same
  device and settings; the data loader must draw from its own ``torch.Generator``). Skipping reads the
  skipped part of the epoch again, without computing on it.
- metrics: each ``log_every`` steps, the means over those steps of what ``step`` returns, plus a
  throughput, are appended to a CSV file (rows past the resumed step, written before a crash, are
  dropped on resume) and shown on a tqdm bar; the same values, the steps per second and the learning rate go
  to TensorBoard as ``<stage>/<name>`` in RUN/tensorboard/<stage>/ (:mod:`worldmodels.tensorboard`; a resumed
  run hides the points past its checkpoint).
- checkpoints: every ``checkpoint_every`` steps and at the end, to a single file, written atomically.
- divergence: a metric that is NaN or infinite stops the run with :class:`TrainingDivergedError` (naming the
  stage, the step and the metric) and leaves the last good checkpoint as it was. The metric sums stay on the
  device between CSV rows, so they are checked where they are read anyway (each CSV row) and before each
  checkpoint is written (one sync per save, which also checks the weights): no sync per step.

The stages' ``precision`` and ``resident`` settings resolve here too (:func:`autocast_dtype`, :func:`keep_resident`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, get_args

import torch
import torch.nn as nn
from tqdm import tqdm

from rollouts.atomic import atomic_write_text
from worldmodels.checkpoint import (
    Checkpoint,
    CheckpointError,
    capture_rng_state,
    load_model_state,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from worldmodels.config_schema import PrecisionName
from worldmodels.device import has_bf16
from worldmodels.tensorboard import ScalarLog, event_dir

log = logging.getLogger(__name__)

NEUTRAL_SETTINGS = frozenset({"epochs", "steps", "checkpoint_every"})
"""Config keys that may change between a run and its resumption without changing the trajectory."""

RESIDENT_FRACTION = 0.5
"""``resident: auto`` holds a data set on a CUDA device when it takes at most this fraction of the memory free there."""

StepFunction = Callable[[Any], tuple[dict[str, torch.Tensor], torch.Tensor | int]]
"""One optimiser step on one batch: returns detached scalar metrics (named as in the plan) and the
number of items the batch held (frames, sequence steps) for the throughput column."""


class TrainingDivergedError(ValueError):
    """A training metric (or the weights) became NaN or infinite; the message names the stage, step and metric."""


class EpochDataset(Protocol):
    """A dataset whose iteration order is chosen per epoch (``rollouts.datasets``)."""

    def set_epoch(self, epoch: int) -> None: ...


@dataclass
class TrainingPlan:
    """What one stage's loop does and where it writes."""

    stage: str
    """Checkpoint kind and progress-bar label: "vae" or "mdnrnn"."""
    checkpoint_path: Path
    log_path: Path
    metric_names: tuple[str, ...]
    """Names of the metrics ``step`` returns, in CSV order; the first is shown on the progress bar."""
    rate_name: str
    """CSV column of the throughput, items per second of wall time (data loading included)."""
    checkpoint_every: int
    log_every: int
    max_epochs: int | None = None
    """Stop once this many epochs are complete (None: no epoch limit)."""
    max_steps: int | None = None
    """Stop after this many optimiser steps (None: no step limit)."""
    steps_per_epoch: int | None = None
    """Estimate for the progress bar's total when only ``max_epochs`` bounds the run."""
    vae_identity: str | None = None
    """The V whose latents the model trains on (``worldmodels.checkpoint.vae_identity``), stored in the checkpoint."""

    def __post_init__(self) -> None:
        if self.max_epochs is None and self.max_steps is None:
            raise ValueError("a training plan needs max_epochs or max_steps")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError(f"checkpoint_every and log_every must be >= 1, got "
                             f"{self.checkpoint_every} and {self.log_every}")

    @property
    def tensorboard_dir(self) -> Path:
        """Where the TensorBoard event files go: RUN/tensorboard/<stage>, RUN being the CSV log's folder."""
        return event_dir(self.log_path.parent, self.stage)

    def finished(self, step: int, epoch: int) -> bool:
        """Whether a loop at this position has nothing left to do."""
        return (self.max_epochs is not None and epoch >= self.max_epochs) or (
            self.max_steps is not None and step >= self.max_steps
        )

    def total_steps(self) -> int | None:
        """Steps the whole run takes, exactly or estimated; None when unknown."""
        by_epochs = self.max_epochs * self.steps_per_epoch if self.max_epochs and self.steps_per_epoch else None
        bounds = [s for s in (self.max_steps, by_epochs) if s is not None]
        return min(bounds) if bounds else None


@dataclass
class TrainSummary:
    """What a training call did."""

    stage: str
    step: int
    """Optimiser steps taken in total, earlier runs included."""
    epoch: int
    """The epoch the next batch would belong to (= completed epochs at an epoch boundary)."""
    resumed_from: int
    """The step this call started at: 0 for a fresh run."""
    already_finished: bool
    """The checkpoint was already at the end: nothing was trained."""
    seconds: float
    checkpoint: Path
    metrics: dict[str, float] = field(default_factory=dict)
    """The last CSV row written by this call (empty when nothing was trained)."""

    def describe(self) -> str:
        """One line for people."""
        if self.already_finished:
            return (f"already finished at step {self.step} (epoch {self.epoch}); nothing to do. "
                    f"Raise the epochs/steps setting to train further: {self.checkpoint}")
        start = f"resumed at step {self.resumed_from}, " if self.resumed_from else ""
        values = ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items() if k not in ("step", "epoch"))
        return f"{start}trained to step {self.step} in {self.seconds:.1f} s ({values}) -> {self.checkpoint}"


class MetricsLog:
    """Append-only CSV of metric rows, with a header; on resume, rows past the resumed step are dropped."""

    def __init__(self, path: Path, columns: tuple[str, ...], resume_step: int | None) -> None:
        self.path = path
        self.columns = columns
        kept = self._rows_until(resume_step) if resume_step is not None else []
        text = io.StringIO()
        writer = csv.DictWriter(text, columns)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(path, text.getvalue())
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, columns)

    def _rows_until(self, step: int) -> list[dict[str, str]]:
        """Rows of an existing log with the same columns and step <= ``step``."""
        try:
            with self.path.open(newline="") as file:
                reader = csv.DictReader(file)
                if tuple(reader.fieldnames or ()) != self.columns:
                    return []
                return [row for row in reader if int(row["step"]) <= step]
        except (OSError, ValueError, KeyError):
            return []

    def write(self, row: dict[str, float | int]) -> None:
        self._writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _restore(checkpoint: Checkpoint, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             config_section: dict[str, Any]) -> None:
    """Load the checkpoint's model, optimiser and RNG state; the optimiser keeps this run's hyperparameters.

    :raises CheckpointError: the model, optimiser or RNG state does not fit.
    """
    load_model_state(model, checkpoint.model, path)
    hyperparameters = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(checkpoint.optimizer)
        restore_rng_state(checkpoint.rng)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path}: its optimiser or RNG state does not fit this run "
                              f"({type(err).__name__}: {err}); move it away to train from scratch") from None
    for group, values in zip(optimizer.param_groups, hyperparameters):
        group.update(values)
    recorded = {k: v for k, v in checkpoint.config.items() if k not in NEUTRAL_SETTINGS}  # newer settings: absent
    changed = sorted(k for k in config_section if k in recorded and recorded[k] != config_section[k])
    if changed:
        log.warning("resuming %s with changed settings (%s); from here the run differs from an uninterrupted one",
                    path, ", ".join(f"{k}: {checkpoint.config.get(k)!r} -> {config_section[k]!r}" for k in changed))


def run_training(
    plan: TrainingPlan,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_args: dict[str, Any],
    config_section: dict[str, Any],
    dataset: EpochDataset,
    loader: Iterable[Any],
    step: StepFunction,
    progress: bool = True,
) -> TrainSummary:
    """Train ``model`` by calling ``step`` on each batch of ``loader`` until ``plan`` is finished.

    :param model_args: the model's constructor arguments, stored so later stages can rebuild it.
    :param config_section: the stage's config section as plain values, stored in the checkpoint.
    :param dataset: the dataset ``loader`` iterates; ``set_epoch`` is called before each epoch.
    :raises CheckpointError: an existing checkpoint is unreadable or does not fit ``model``.
    :raises TrainingDivergedError: a metric or the weights became NaN or infinite (the checkpoint is left as it
        was at the last good save).
    """
    started = time.perf_counter()
    path = plan.checkpoint_path
    step_count, epoch, skip = 0, 0, 0
    if path.exists():
        checkpoint = read_checkpoint(path, kind=plan.stage)
        _restore(checkpoint, path, model, optimizer, config_section)
        step_count, epoch, skip = checkpoint.step, checkpoint.epoch, checkpoint.epoch_batches
        log.info("%s: resuming from %s at step %d (epoch %d, batch %d)", plan.stage, path, step_count, epoch, skip)
    resumed_from = step_count

    def summary(**extra: Any) -> TrainSummary:
        return TrainSummary(plan.stage, step_count, epoch, resumed_from, seconds=time.perf_counter() - started,
                            checkpoint=path, **extra)

    def diverged(what: str) -> TrainingDivergedError:
        kept = (f"{path} still holds step {saved_at}, the last good one" if path.exists()
                else f"no checkpoint was written to {path}")
        return TrainingDivergedError(
            f"{plan.stage}: {what} at step {step_count}; training stopped and {kept}. Lower the learning rate "
            "or check the data, then run the command again to resume from that checkpoint (or use a new --run folder)")

    def check_row(row: dict[str, float]) -> None:
        bad = [name for name in plan.metric_names if not math.isfinite(row[name])]
        if bad:
            raise diverged(f"{bad[0]} is {row[bad[0]]} (the mean of the steps since the last log row)")

    def save(epoch_batches: int) -> None:
        bad = interval.non_finite()
        if bad:
            raise diverged(f"{bad} is not finite in the steps since the last log row")
        state = model.state_dict()
        floats = {name: tensor for name, tensor in state.items() if tensor.is_floating_point()}
        finite = torch.stack([torch.isfinite(t).all() for t in floats.values()]).tolist() if floats else []  # one sync
        bad_weights = [name for name, ok in zip(floats, finite) if not ok]
        if bad_weights:
            raise diverged(f"the weights {', '.join(bad_weights[:3])} are not finite")
        save_checkpoint(path, Checkpoint(plan.stage, model_args, state, optimizer.state_dict(), config_section,
                                         step_count, epoch, epoch_batches, capture_rng_state(), plan.vae_identity))

    def write_row() -> None:
        """Turn the steps since the last row into a CSV row and TensorBoard scalars; stop on a non-finite metric."""
        nonlocal last_row
        last_row, steps_per_s = interval.flush(step_count, step_epoch, plan.rate_name)
        metrics_log.write(last_row)
        scalars.write(step_count, {**{name: last_row[name] for name in (*plan.metric_names, plan.rate_name)},
                                   "steps_per_s": steps_per_s, **_learning_rates(optimizer)})
        check_row(last_row)

    interval = _Interval(plan.metric_names)
    saved_at = step_count
    if plan.finished(step_count, epoch):
        if not path.exists():  # a budget of zero steps: the initialised model is the result (untrained-M ablation)
            save(0)
        log.info("%s: %s is already at the end of training (step %d, epoch %d)", plan.stage, path, step_count, epoch)
        return summary(already_finished=True)

    metrics_log = MetricsLog(plan.log_path, ("step", "epoch", *plan.metric_names, plan.rate_name),
                             resume_step=step_count if resumed_from else None)
    scalars = ScalarLog(plan.tensorboard_dir, plan.stage, first_step=step_count + 1)
    bar = tqdm(total=plan.total_steps(), initial=step_count, desc=plan.stage, unit="step", disable=not progress)
    last_row: dict[str, float] = {}
    consumed, step_epoch = skip, epoch
    model.train()
    try:
        while not plan.finished(step_count, epoch):
            dataset.set_epoch(epoch)
            consumed = 0
            for batch in loader:
                consumed += 1
                if consumed <= skip:
                    continue
                interval.add(*step(batch))
                step_count, step_epoch = step_count + 1, epoch
                bar.update(1)
                last_step = plan.max_steps is not None and step_count >= plan.max_steps
                if step_count % plan.log_every == 0 or last_step:
                    write_row()
                    bar.set_postfix({plan.metric_names[0]: f"{last_row[plan.metric_names[0]]:.4g}"})
                if step_count % plan.checkpoint_every == 0:
                    save(consumed)
                    saved_at = step_count
                if last_step:
                    break
            else:
                if consumed == 0:
                    raise ValueError(f"{plan.stage}: an epoch of the data yielded no batches")
                epoch, skip, consumed = epoch + 1, 0, 0
                continue
            break
        if interval.steps:
            write_row()
        if saved_at != step_count or consumed == 0:
            save(consumed)
    finally:
        bar.close()
        metrics_log.close()
        scalars.close()
    return summary(already_finished=False, metrics=last_row)


def _learning_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The optimiser's learning rate as ``learning_rate``, or ``learning_rate_<i>`` per parameter group when the
    groups differ (a GAN's critic and generator); empty when it has none."""
    rates = [float(group["lr"]) for group in optimizer.param_groups if "lr" in group]
    if len(set(rates)) == 1:
        return {"learning_rate": rates[0]}
    return {f"learning_rate_{i}": rate for i, rate in enumerate(rates)}


def autocast_dtype(precision: PrecisionName, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a ``precision`` setting on ``device``: bfloat16, or None for float32.

    auto: bfloat16 on a CUDA device that supports it, float32 elsewhere (the CPU included).
    :raises ValueError: an unknown value, or bfloat16 on hardware without bf16 arithmetic.
    """
    if precision not in get_args(PrecisionName):
        raise ValueError(f"unknown precision {precision!r}; use one of {get_args(PrecisionName)}")
    supported = has_bf16(device)
    if precision == "bfloat16" and not supported:
        raise ValueError(f"precision 'bfloat16' needs bf16 arithmetic, which this {device.type.upper()} lacks "
                         "(on the CPU: AVX-512 BF16 or AMX); use precision 'float32'")
    wanted = precision == "bfloat16" or (precision == "auto" and device.type == "cuda")
    return torch.bfloat16 if wanted and supported else None


def keep_resident(setting: bool | str, nbytes: int, device: torch.device) -> bool:
    """Whether a data set of ``nbytes`` is held on ``device`` under a ``resident`` setting (true, false, auto).

    auto: on CUDA when it takes at most :data:`RESIDENT_FRACTION` of the free memory; on the CPU, streaming.
    :raises ValueError: an unknown value, or true on a CUDA device with less free memory than the data set.
    """
    if not (isinstance(setting, bool) or setting == "auto"):
        raise ValueError(f"unknown resident setting {setting!r}; use true, false or 'auto'")
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    if setting is True and free is not None and nbytes > free:
        raise ValueError(f"the data set takes {nbytes / 2**30:.1f} GiB but {device} has {free / 2**30:.1f} GiB free: "
                         "set resident to false (or auto) to stream it from disk")
    if setting == "auto":
        return free is not None and nbytes <= RESIDENT_FRACTION * free
    return setting


def resolved_settings(section: Any, dtype: torch.dtype | None, resident: bool) -> dict[str, Any]:
    """A stage's config ``section`` as plain values, with ``precision`` and ``resident`` as this run resolved
    them (what its checkpoint stores: resuming where they resolve otherwise is warned of); older configs'
    ``mixed_precision`` (read into precision) is left out."""
    values = {k: v for k, v in dataclasses.asdict(section).items() if k != "mixed_precision"}
    return {**values, "precision": "bfloat16" if dtype == torch.bfloat16 else "float32", "resident": resident}


class _Interval:
    """Running sums of the metrics since the last CSV row, kept on the device to avoid a sync per step."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.items: torch.Tensor | int = 0
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, metrics: dict[str, torch.Tensor], items: torch.Tensor | int) -> None:
        """Count one step's metrics and items."""
        for name in self.names:
            self.sums[name] = self.sums.get(name, 0) + metrics[name].float()
        self.items = self.items + items
        self.steps += 1

    def non_finite(self) -> str | None:
        """The first metric whose sum since the last flush is NaN or infinite (one device sync), else None."""
        if not self.sums:
            return None
        finite = torch.isfinite(torch.stack([self.sums[n] for n in self.names])).tolist()
        return next((name for name, ok in zip(self.names, finite) if not ok), None)

    def flush(self, step: int, epoch: int, rate_name: str) -> tuple[dict[str, float], float]:
        """The CSV row for the steps since the last flush, the last of them being ``step`` of ``epoch`` (metric
        means and items per second), and those steps per second of wall time; then reset."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        row = {"step": step, "epoch": epoch, **{n: float(self.sums[n]) / self.steps for n in self.names},
               rate_name: float(self.items) / elapsed}
        steps_per_s = self.steps / elapsed
        self._reset()
        return row, steps_per_s
