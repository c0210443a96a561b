"""Stage ``train-cnn``: a named CNN encoder with a linear head trained on a frame task, scored on held-out episodes.

Whole episodes are held out (``cnn.heldout_fraction``, chosen by the seed), so frames of one episode never sit on
both sides. Training runs through the shared loop (:func:`worldmodels.training.run_training`: checkpoints, exact
resume); each time an epoch completes, the held-out episodes are scored. Writes into the run folder:

    cnn.pt        the latest checkpoint (kind "cnn", a ``FramePredictor``), resumed when present
    cnn_log.csv   step, epoch, loss, frames_per_s: training loss means over ``log_every`` steps
    cnn_eval.csv  step, epoch and the held-out scores after each epoch: mse, r2 (task "action") or
                  cross_entropy, accuracy, majority_accuracy (task "reward")
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rollouts.datasets import SequenceDataset
from rollouts.storage import list_episode_files, read_arrays
from worldmodels.checkpoint import model_args_of, read_checkpoint
from worldmodels.components.cnn import FramePredictor
from worldmodels.components.frame_tasks import INPUT_FRAMES, FrameTask, frame_inputs, make_task
from worldmodels.config_schema import Config, FrameInputName
from worldmodels.device import resolve_device
from worldmodels.run_layout import CNN_CHECKPOINT_NAME, CNN_EVAL_LOG_NAME, CNN_LOG_NAME
from worldmodels.training import MetricsLog, TrainingPlan, TrainSummary, run_training


@dataclass
class CNNReport:
    """What a ``train_cnn`` call did, and how the model scores on the held-out episodes at its end."""

    summary: TrainSummary
    scores: dict[str, float]
    """The task's held-out scores (see ``cnn_eval.csv``)."""
    train_episodes: int
    heldout_episodes: int

    def describe(self) -> str:
        """One line for people."""
        scores = ", ".join(f"{name} {value:.4g}" for name, value in self.scores.items())
        return (f"{self.summary.describe()}; {self.heldout_episodes} held-out episodes (trained on "
                f"{self.train_episodes}): {scores}")


def cnn_config_args(config: Config) -> dict[str, Any]:
    """The frame model's constructor arguments the config decides, by setting
    (:func:`worldmodels.checkpoint.model_args_of`); the data decides ``in_channels`` (with ``cnn.input``),
    ``image_size`` and ``outputs`` (with ``cnn.task``)."""
    return {"cnn.encoder": config.cnn.encoder, "cnn.features_dim": config.cnn.features_dim}


def split_episodes(files: Sequence[Path], heldout_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(training, held-out) episode files: round(fraction * N) episodes held out (at least one, and at least one
    left to train on), chosen by a permutation seeded with ``seed``; both lists keep the files' order."""
    if not 0 < heldout_fraction < 1:
        raise ValueError(f"cnn.heldout_fraction must be between 0 and 1 (exclusive), got {heldout_fraction}")
    if len(files) < 2:
        raise ValueError(f"train-cnn holds whole episodes out for scoring and needs at least 2 episodes; found "
                         f"{len(files)}")
    count = min(max(1, round(heldout_fraction * len(files))), len(files) - 1)
    heldout = set(np.random.default_rng(seed).permutation(len(files))[:count].tolist())
    return [f for i, f in enumerate(files) if i not in heldout], [f for i, f in enumerate(files) if i in heldout]


class EpochEndHook:
    """Iterates ``loader`` and calls ``at_end()`` each time an iteration runs to its end: in the shared training
    loop, once per completed epoch (not when the step budget stops an epoch early)."""

    def __init__(self, loader: Iterable[Any], at_end: Callable[[], None]) -> None:
        self.loader = loader
        self.at_end = at_end

    def __iter__(self) -> Iterator[Any]:
        yield from self.loader
        self.at_end()


@torch.no_grad()
def score_heldout(model: FramePredictor, loader: DataLoader, task: FrameTask, input_name: FrameInputName,
                  device: torch.device) -> dict[str, float]:
    """The task's scores of ``model`` (left in eval mode) over every step ``loader`` yields."""
    model.eval()
    predictions, targets = [], []
    for batch in loader:
        x = frame_inputs(batch["observations"].to(device), input_name)  # (B, kC, H, W)
        predictions.append(model(x).float().cpu())
        targets.append(task.targets(batch))
    return task.score(torch.cat(predictions), torch.cat(targets))


def train_cnn(
    config: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    progress: bool = True,
    log_every: int = 10,
    max_steps: int | None = None,
    seed: int = 0,
) -> CNNReport:
    """Train ``config.cnn.encoder`` on ``config.cnn.task`` for ``cnn.epochs`` epochs, resuming ``run_dir/cnn.pt``.

    Items are single steps of the training episodes (``SequenceDataset`` windows of one step, shuffled within
    ``buffer_episodes``), read as ``cnn.input`` (o_t, or o_t and o_{t+1} on channels) and scaled to [0, 1]; Adam.

    :param log_every: optimiser steps per row of ``cnn_log.csv``.
    :param max_steps: stop after this many optimiser steps in total (smoke runs); a later call resumes.
    :param seed: seeds the held-out split, the initialisation and the data order.
    :raises ValueError: too few episodes, discrete actions, or a bad setting.
    """
    cfg = config.cnn
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    train_files, heldout_files = split_episodes(list_episode_files(data_dir), cfg.heldout_fraction, seed)
    sample = read_arrays(train_files[0], ("observations", "actions"))
    observations, actions = sample["observations"], sample["actions"]  # (T+1, H, W, C) uint8, (T, A)
    if actions.ndim != 2:
        raise ValueError(f"train-cnn needs continuous actions stored as (T, A); {train_files[0]} holds actions of "
                         f"shape {actions.shape} {actions.dtype}")
    task = make_task(cfg.task, actions.shape[1])
    torch.manual_seed(seed)
    model_args = {**model_args_of(cnn_config_args(config)),
                  "in_channels": INPUT_FRAMES[cfg.input] * observations.shape[3],
                  "image_size": observations.shape[1:3], "outputs": task.outputs}
    model = FramePredictor(**model_args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    dataset = SequenceDataset(train_files, seq_len=1, source="observations", shuffle=True,
                              buffer_episodes=cfg.buffer_episodes, seed=seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.loader_workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator())
    heldout_data = SequenceDataset(heldout_files, seq_len=1, source="observations", shuffle=False,
                                   buffer_episodes=cfg.buffer_episodes)
    heldout = DataLoader(heldout_data, batch_size=cfg.batch_size, num_workers=cfg.loader_workers,
                         generator=torch.Generator())

    checkpoint_path = run_dir / CNN_CHECKPOINT_NAME
    resumed = checkpoint_path.exists()
    # The step count labels the held-out rows; run_training restores everything else from the same file.
    step_count = read_checkpoint(checkpoint_path, kind="cnn").step if resumed else 0
    eval_log = MetricsLog(run_dir / CNN_EVAL_LOG_NAME, ("step", "epoch", *task.metric_names),
                          resume_step=step_count if resumed else None)

    def step(batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        nonlocal step_count
        x = frame_inputs(batch["observations"].to(device, non_blocking=True), cfg.input)  # (B, kC, H, W)
        loss = task.loss(model(x), task.targets(batch).to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step_count += 1
        return {"loss": loss.detach()}, x.shape[0]

    def score() -> dict[str, float]:
        return score_heldout(model, heldout, task, cfg.input, device)

    def score_epoch() -> None:
        eval_log.write({"step": step_count, "epoch": dataset.epoch + 1, **score()})
        model.train()

    plan = TrainingPlan(
        stage="cnn",
        checkpoint_path=checkpoint_path,
        log_path=run_dir / CNN_LOG_NAME,
        metric_names=("loss",),
        rate_name="frames_per_s",
        checkpoint_every=cfg.checkpoint_every,
        log_every=log_every,
        max_epochs=cfg.epochs,
        max_steps=max_steps,
        steps_per_epoch=math.ceil(len(dataset) / cfg.batch_size),
    )
    try:
        summary = run_training(plan, model, optimizer, model_args, dataclasses.asdict(cfg), dataset,
                               EpochEndHook(loader, score_epoch), step, progress)
    finally:
        eval_log.close()
    return CNNReport(summary, score(), len(train_files), len(heldout_files))
