"""Stage encode: run V's encoder over every stored episode and store its posterior (mu, logvar) per frame.

The latents land beside each episode file (``rollouts.storage.write_latents``), where M's training
reads them; an episode whose latents are newer than the VAE checkpoint is skipped, so an interrupted
encode resumes and a retrained V re-encodes everything.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rollouts.storage import latent_path, list_episode_files, read_arrays, write_latents
from worldmodels.checkpoint import load_vae
from worldmodels.device import resolve_device
from worldmodels.vae import ConvVAE

log = logging.getLogger(__name__)


@torch.inference_mode()
def encode_frames(
    vae: ConvVAE, frames: np.ndarray, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """V's posterior for frames (N, H, W, C) uint8: (mu, logvar), each (N, Z) float32 on the CPU.

    Runs in float32 on the model's device, ``batch_size`` frames at a time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(vae.parameters()).device
    mus, logvars = [], []
    for start in range(0, len(frames), batch_size):
        chunk = torch.from_numpy(frames[start : start + batch_size]).to(device)  # (b, H, W, C) uint8
        mu, logvar = vae.encode(chunk.permute(0, 3, 1, 2).float().div_(255))  # (b, Z) each
        mus.append(mu.float().cpu())
        logvars.append(logvar.float().cpu())
    return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


def _up_to_date(episode_file: Path, checkpoint_mtime_ns: int) -> bool:
    """Whether ``episode_file`` already has latents written after the checkpoint."""
    latents = latent_path(episode_file)
    return latents.exists() and latents.stat().st_mtime_ns > checkpoint_mtime_ns


def encode_episodes(
    vae_checkpoint: str | Path,
    data_dir: str | Path,
    batch_size: int = 256,
    device: torch.device | str = "auto",
    progress: bool = True,
    overwrite: bool = False,
) -> int:
    """Write (mu, logvar), each (T+1, Z) float32, for every episode in ``data_dir``; the number encoded.

    :param vae_checkpoint: a ``train-vae`` checkpoint (``RUN/vae.pt``).
    :param batch_size: frames per forward pass of the encoder.
    :param device: a torch device, or a ``device`` setting ("auto", "cpu", "cuda").
    :param overwrite: encode every episode, even those whose latents are newer than the checkpoint.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    vae = load_vae(vae_checkpoint, device)
    checkpoint_mtime_ns = Path(vae_checkpoint).stat().st_mtime_ns
    files = list_episode_files(data_dir)
    todo = [f for f in files if overwrite or not _up_to_date(f, checkpoint_mtime_ns)]
    log.info("encode: %d of %d episodes to encode on %s (the others are up to date)", len(todo), len(files), device)
    for file in tqdm(todo, desc="encode", unit="episode", disable=not progress):
        frames = read_arrays(file, ("observations",))["observations"]  # (T+1, H, W, C) uint8
        write_latents(file, *encode_frames(vae, frames, batch_size))
    return len(todo)
