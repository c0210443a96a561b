"""Stage V: train the ConvVAE on every stored frame, streamed from disk, with the paper's loss.

Writes into the run folder:

    vae.pt                   the latest checkpoint (see ``worldmodels.checkpoint``), resumed when present
    vae_log.csv              step, epoch, loss, reconstruction, kl, kl_raw, frames_per_s; one row per
                             ``log_every`` steps, means over those steps (loss terms in nats per frame)
    vae_reconstructions.png  a row of stored frames above their reconstructions (decoded from mu)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rollouts.datasets import FrameDataset
from rollouts.storage import list_episode_files, read_arrays
from worldmodels.checkpoint import model_args_of
from worldmodels.config_schema import Config
from worldmodels.device import resolve_device
from worldmodels.pictures import write_image_grid
from worldmodels.run_layout import VAE_CHECKPOINT_NAME, VAE_LOG_NAME, VAE_RECONSTRUCTIONS_NAME
from worldmodels.training import (
    TrainingPlan,
    TrainSummary,
    autocast_dtype,
    keep_resident,
    resolved_settings,
    run_training,
)
from worldmodels.vae import ConvVAE, vae_loss

METRICS = ("loss", "reconstruction", "kl", "kl_raw")
FRAME_SIZE = 64
GRID_FRAMES = 8


def vae_config_args(config: Config) -> dict[str, Any]:
    """V's constructor arguments the config decides, by setting (:func:`worldmodels.checkpoint.model_args_of`); the
    data decides ``in_channels``."""
    return {"vae.z_size": config.vae.z_size, "vae.encoder": config.vae.encoder}


def train_vae(
    config: Config,
    data_dir: str | Path,
    run_dir: str | Path,
    progress: bool = True,
    log_every: int = 10,
    max_steps: int | None = None,
    seed: int = 0,
) -> TrainSummary:
    """Train V on the episodes in ``data_dir`` for ``config.vae.epochs`` epochs, resuming ``run_dir/vae.pt``.

    Frames come from :class:`FrameDataset` in uint8 batches, each gathered by one tensor index, and become
    floats in [0, 1] on the device. ``vae.resident`` decides where they live: streamed from disk
    (``buffer_episodes`` in memory, ``loader_workers`` decoding processes) or held on the device, loaded
    once (:func:`worldmodels.training.keep_resident`). ``vae.precision`` bfloat16 runs the forward pass under
    bfloat16 autocast, on CUDA or the CPU (:func:`worldmodels.training.autocast_dtype`); the loss is float32.

    :param log_every: optimiser steps per CSV row.
    :param max_steps: stop after this many optimiser steps in total (benchmarks, smoke runs); None
        uses ``vae.max_steps``, and where both are set the smaller wins. A later call with a larger
        limit resumes where this one stopped.
    :param seed: seeds the model's initialisation, the sampling noise and the data order.
    """
    cfg = config.vae
    step_limits = [limit for limit in (max_steps, cfg.max_steps) if limit is not None]
    device = resolve_device(config.device)
    run_dir = Path(run_dir)
    files = list_episode_files(data_dir)
    sample = read_arrays(files[0], ("observations",))["observations"]  # (T+1, H, W, C) uint8
    if sample.shape[1:3] != (FRAME_SIZE, FRAME_SIZE):
        raise ValueError(f"the ConvVAE needs {FRAME_SIZE}x{FRAME_SIZE} frames; {files[0]} holds "
                         f"{sample.shape[1]}x{sample.shape[2]} frames")
    torch.manual_seed(seed)
    model_args = {**model_args_of(vae_config_args(config)), "in_channels": int(sample.shape[3])}
    model = ConvVAE(**model_args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    dtype = autocast_dtype(cfg.precision, device)
    dataset = FrameDataset(files, shuffle=True, buffer_episodes=cfg.buffer_episodes, seed=seed,
                           batch_size=cfg.batch_size)
    resident = keep_resident(cfg.resident, dataset.nbytes, device)
    if resident:
        dataset.to(device)
    loader = DataLoader(dataset, batch_size=None, num_workers=0 if resident else cfg.loader_workers,
                        pin_memory=device.type == "cuda" and not resident, generator=torch.Generator())

    def step(frames: torch.Tensor) -> tuple[dict[str, torch.Tensor], int]:
        x = frames.to(device, non_blocking=True).float().div_(255)  # (B, C, 64, 64) in [0, 1]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype is not None):
            out = model(x)
        loss = vae_loss(x, out.recon.float(), out.mu.float(), out.logvar.float(), cfg.kl_tolerance)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        values = (loss.total, loss.reconstruction, loss.kl, loss.kl_raw)
        return {name: value.detach() for name, value in zip(METRICS, values)}, x.shape[0]

    plan = TrainingPlan(
        stage="vae",
        checkpoint_path=run_dir / VAE_CHECKPOINT_NAME,
        log_path=run_dir / VAE_LOG_NAME,
        metric_names=METRICS,
        rate_name="frames_per_s",
        checkpoint_every=cfg.checkpoint_every,
        log_every=log_every,
        max_epochs=cfg.epochs,
        max_steps=min(step_limits) if step_limits else None,
        steps_per_epoch=len(dataset),
    )
    summary = run_training(plan, model, optimizer, model_args, resolved_settings(cfg, dtype, resident), dataset,
                           loader, step, progress)
    grid_path = run_dir / VAE_RECONSTRUCTIONS_NAME
    if not summary.already_finished or not grid_path.exists():
        index = np.linspace(0, len(sample) - 1, GRID_FRAMES).round().astype(int)
        save_reconstruction_grid(model, sample[index], grid_path)
    return summary


@torch.no_grad()
def save_reconstruction_grid(model: ConvVAE, frames: np.ndarray, path: str | Path) -> None:
    """Write a PNG of ``frames`` (N, 64, 64, C) uint8 in one row above V's reconstructions of them.

    Reconstructions decode the posterior mean, so the picture does not depend on sampling noise.
    """
    model.eval()
    device = next(model.parameters()).device
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255  # (N, C, 64, 64)
    mu, _ = model.encode(x)  # (N, Z)
    recon = model.decode(mu).permute(0, 2, 3, 1).mul(255).round().clamp(0, 255)  # (N, 64, 64, C)
    write_image_grid(path, np.stack([frames, recon.to(torch.uint8).cpu().numpy()]))  # (2, N, 64, 64, C)
