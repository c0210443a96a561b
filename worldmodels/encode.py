"""Stage encode: run V's encoder over every stored episode and store its posterior (mu, logvar) per frame.

The latents land beside each episode file (``rollouts.storage.write_latents``), where M's training
reads them, with V's identity (:func:`worldmodels.checkpoint.vae_identity`: its step and a hash of its
weights). An episode whose latents record this V's identity (and read back whole and finite) is skipped, so an
interrupted encode resumes and a retrained V re-encodes everything, whatever the files' times; latents that
record no identity (written before it was recorded) are encoded again.

Stages that read latents with a known V (``train-mdnrnn`` with RUN/vae.pt beside it, the dream with its V)
call :func:`check_latents_identity`: latents of another V are refused (run ``worldmodels encode``); latents
that record no V are accepted with one warning, since which V wrote them cannot be told.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from rollouts.storage import (
    EpisodeFileError,
    latent_path,
    list_episode_files,
    read_arrays,
    read_latents,
    read_latents_identity,
    write_latents,
)
from worldmodels.checkpoint import load_vae, vae_identity
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


def _up_to_date(episode_file: Path, identity: str) -> bool:
    """Whether ``episode_file`` has latents of the V named ``identity`` that read back whole and finite."""
    if not latent_path(episode_file).exists():
        return False
    try:
        read_latents(episode_file)
        return read_latents_identity(episode_file) == identity
    except EpisodeFileError as err:
        log.warning("%s; encoding it again", err)
        return False


def encode_episodes(
    vae_checkpoint: str | Path,
    data_dir: str | Path,
    batch_size: int = 256,
    device: torch.device | str = "auto",
    progress: bool = True,
    overwrite: bool = False,
) -> int:
    """Write (mu, logvar), each (T+1, Z) float32, and V's identity for every episode in ``data_dir``; the number
    encoded.

    :param vae_checkpoint: a ``train-vae`` checkpoint (``RUN/vae.pt``).
    :param batch_size: frames per forward pass of the encoder.
    :param device: a torch device, or a ``device`` setting ("auto", "cpu", "cuda").
    :param overwrite: encode every episode, even those whose latents are already this V's.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    vae = load_vae(vae_checkpoint, device)
    identity = vae_identity(vae_checkpoint)
    files = list_episode_files(data_dir)
    todo = [f for f in files if overwrite or not _up_to_date(f, identity)]
    log.info("encode: %d of %d episodes to encode with V %s on %s (the others are up to date)", len(todo),
             len(files), identity, device)
    for file in tqdm(todo, desc="encode", unit="episode", disable=not progress):
        frames = read_arrays(file, ("observations",))["observations"]  # (T+1, H, W, C) uint8
        write_latents(file, *encode_frames(vae, frames, batch_size), vae_identity=identity)
    return len(todo)


def check_latents_identity(files: Sequence[Path], vae_checkpoint: str | Path) -> None:
    """Refuse the latents of ``files`` unless they were encoded by the V in ``vae_checkpoint``.

    Latents that record no V (written before identities were recorded) are accepted with one warning.

    :raises EpisodeFileError: an episode's latents are missing, unreadable, or another V's (the message says to
        run ``worldmodels encode``).
    """
    identity = vae_identity(vae_checkpoint)
    found = {file: read_latents_identity(file) for file in files}
    other = [file for file, recorded in found.items() if recorded is not None and recorded != identity]
    if other:
        folder = other[0].parent
        raise EpisodeFileError(
            f"{len(other)} of {len(files)} episodes in {folder} hold latents of another V than {vae_checkpoint} "
            f"({latent_path(other[0]).name} was encoded by V {found[other[0]]}, this V is {identity}): run "
            f"`worldmodels encode --data {folder} --run {Path(vae_checkpoint).parent}` to encode them with this V")
    unknown = [file for file, recorded in found.items() if recorded is None]
    if unknown:
        log.warning("%d of %d episodes in %s hold latents that do not record which V encoded them (written before "
                    "identities were recorded); assuming %s. Run `worldmodels encode` to re-encode and record it",
                    len(unknown), len(files), unknown[0].parent, vae_checkpoint)
