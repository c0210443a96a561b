"""Stage ``train-cyclegan``: a CycleGAN trained on the frames of two unpaired rollout folders A and B, streamed
from disk, with translation grids as it goes.

A training step takes one batch of A frames and one of B frames (each folder shuffled on its own; an epoch
ends when the smaller folder runs out, its incomplete last batch dropped) and makes one generator update and
one discriminator update (:class:`worldmodels.components.cyclegan_updates.CycleGANUpdates`). Steps run through
the shared loop (:func:`worldmodels.training.run_training`). Writes into the run folder:

    cyclegan.pt                         the latest checkpoint (kind "cyclegan": both generators, both
                                        discriminators and their optimiser), resumed when present
    cyclegan_log.csv                    step, epoch, generator_loss, validity_loss, cycle_loss, identity_loss,
                                        discriminator_loss (see ``CycleGANUpdates.step``), frames_per_s (A and B
                                        frames together)
    cyclegan_samples/step_NNNNNNN.png   8 columns of fixed frames; rows: A, A->B, A->B->A, B, B->A, B->A->B;
                                        every ``sample_every`` steps and at the end
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rollouts.datasets import FrameDataset
from rollouts.storage import list_episode_files, read_arrays
from worldmodels.checkpoint import model_args_of, read_checkpoint
from worldmodels.components.cyclegan import CycleGAN
from worldmodels.components.cyclegan_updates import METRIC_NAMES, CycleGANUpdates, CycleGANWeights, make_optimizer
from worldmodels.components.gan import FRAME_SIZE, to_unit_range
from worldmodels.config_schema import Config
from worldmodels.device import resolve_device
from worldmodels.pictures import write_image_grid
from worldmodels.run_layout import (
    CYCLEGAN_CHECKPOINT_NAME,
    CYCLEGAN_LOG_NAME,
    CYCLEGAN_SAMPLES_DIR,
    sample_grid_path,
)
from worldmodels.training import TrainingPlan, TrainSummary, run_training

GRID_COLUMNS = 8


def cyclegan_config_args(config: Config) -> dict[str, Any]:
    """The CycleGAN's constructor arguments the config decides, by setting
    (:func:`worldmodels.checkpoint.model_args_of`); the data decides ``channels``."""
    cfg = config.cyclegan
    return {"cyclegan.generator": cfg.generator, "cyclegan.width": cfg.width,
            "cyclegan.resnet_blocks": cfg.resnet_blocks}


class UnpairedFrameBatches:
    """Batches (frames_a, frames_b), each (B, C, 64, 64) uint8, from two :class:`FrameDataset` streams read side
    by side; an epoch lasts as many batches as the smaller stream holds. Serves the shared loop as both the
    dataset (``set_epoch``) and the loader (iteration)."""

    def __init__(self, loader_a: DataLoader, loader_b: DataLoader) -> None:
        self.loaders = (loader_a, loader_b)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order both streams follow next."""
        for loader in self.loaders:
            loader.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return min(len(loader) for loader in self.loaders)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return zip(*self.loaders)


def first_frames(data_dir: str | Path) -> tuple[list[Path], np.ndarray]:
    """The episode files of ``data_dir`` and the frames (T+1, 64, 64, C) uint8 of the first.

    :raises ValueError: the frames are not 64x64.
    """
    files = list_episode_files(data_dir)
    frames = read_arrays(files[0], ("observations",))["observations"]
    if frames.shape[1:3] != (FRAME_SIZE, FRAME_SIZE):
        raise ValueError(f"the CycleGAN translates {FRAME_SIZE}x{FRAME_SIZE} frames; {files[0]} holds "
                         f"{frames.shape[1]}x{frames.shape[2]} frames")
    return files, frames


def train_cyclegan(
    config: Config,
    data_a: str | Path,
    data_b: str | Path,
    run_dir: str | Path,
    progress: bool = True,
    log_every: int = 10,
    seed: int = 0,
) -> TrainSummary:
    """Train a CycleGAN between the frames of ``data_a`` and ``data_b`` for ``config.cyclegan.steps`` steps,
    resuming ``run_dir/cyclegan.pt``.

    :param log_every: steps per row of ``cyclegan_log.csv``.
    :param seed: seeds the initialisation, the image pools' draws and the data order.
    :raises ValueError: the frames are not 64x64, the two folders' frames differ in channels, or a folder holds
        fewer frames than one batch.
    """
    cfg = config.cyclegan
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    (files_a, sample_a), (files_b, sample_b) = first_frames(data_a), first_frames(data_b)
    if sample_a.shape[3] != sample_b.shape[3]:
        raise ValueError(f"{data_a} holds frames of {sample_a.shape[3]} channels but {data_b} of {sample_b.shape[3]}")
    loaders = []
    for index, (files, folder) in enumerate(((files_a, data_a), (files_b, data_b))):
        dataset = FrameDataset(files, shuffle=True, buffer_episodes=cfg.buffer_episodes, seed=seed + index)
        if len(dataset) < cfg.batch_size:
            raise ValueError(f"{folder} holds {len(dataset)} frames, fewer than cyclegan.batch_size = "
                             f"{cfg.batch_size}; lower it or gather more episodes")
        loaders.append(DataLoader(dataset, batch_size=cfg.batch_size, drop_last=True, num_workers=cfg.loader_workers,
                                  pin_memory=device.type == "cuda", generator=torch.Generator()))
    batches = UnpairedFrameBatches(*loaders)
    torch.manual_seed(seed)
    model_args = {**model_args_of(cyclegan_config_args(config)), "channels": int(sample_a.shape[3])}
    model = CycleGAN(**model_args).to(device)
    optimizer = make_optimizer(model, cfg.learning_rate)
    updates = CycleGANUpdates(model, optimizer, CycleGANWeights(cfg.validity_weight, cfg.cycle_weight,
                                                                cfg.identity_weight), cfg.pool_size)
    grid_a, grid_b = (fixed_frames(frames, GRID_COLUMNS) for frames in (sample_a, sample_b))
    checkpoint_path = run_dir / CYCLEGAN_CHECKPOINT_NAME
    # The step count decides when grids are due; run_training restores everything else from the same file.
    step_count = read_checkpoint(checkpoint_path, kind="cyclegan").step if checkpoint_path.exists() else 0

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
        nonlocal step_count
        real_a, real_b = (to_unit_range(frames.to(device, non_blocking=True)) for frames in batch)  # (B, C, 64, 64)
        metrics = updates.step(real_a, real_b)
        step_count += 1
        if step_count % cfg.sample_every == 0:
            save_translation_grid(model, grid_a, grid_b, sample_grid_path(run_dir, CYCLEGAN_SAMPLES_DIR, step_count))
        return metrics, real_a.shape[0] + real_b.shape[0]

    plan = TrainingPlan(
        stage="cyclegan",
        checkpoint_path=checkpoint_path,
        log_path=run_dir / CYCLEGAN_LOG_NAME,
        metric_names=METRIC_NAMES,
        rate_name="frames_per_s",
        checkpoint_every=cfg.checkpoint_every,
        log_every=log_every,
        max_steps=cfg.steps,
        steps_per_epoch=len(batches),
    )
    summary = run_training(plan, model, optimizer, model_args, dataclasses.asdict(cfg), batches, batches, step,
                           progress)
    if not summary.already_finished and summary.step % cfg.sample_every:
        save_translation_grid(model, grid_a, grid_b, sample_grid_path(run_dir, CYCLEGAN_SAMPLES_DIR, summary.step))
    return summary


def fixed_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """``count`` frames (count, H, W, C) evenly spaced through an episode's frames (T+1, H, W, C), repeating
    frames when the episode is shorter."""
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]


def save_translation_grid(model: CycleGAN, frames_a: np.ndarray, frames_b: np.ndarray, path: str | Path) -> None:
    """Write one PNG, atomically, of N columns and six rows of 64x64 frames: frames_a (N, 64, 64, C) uint8, their
    A->B translation and A->B->A round trip, then frames_b (N, 64, 64, C), B->A and B->A->B."""
    to_b = model.translate(frames_a, "ab")
    to_a = model.translate(frames_b, "ba")
    rows = [frames_a, to_b, model.translate(to_b, "ba"), frames_b, to_a, model.translate(to_a, "ab")]
    write_image_grid(path, np.stack(rows))  # (6, N, 64, 64, C)
