"""Pictures written next to the numbers: animated GIFs of episodes and dreams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rollouts.atomic import atomic_path


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 25.0, scale: int = 2) -> None:
    """Write ``frames`` (T, H, W, 3) uint8 as a looping GIF at ``fps`` frames/s, each pixel ``scale`` x ``scale``.

    Written atomically; raises ValueError for an empty sequence or frames that are not uint8 RGB.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"a GIF needs frames of shape (T, H, W, 3) uint8 with T >= 1, got {frames.shape} "
                         f"{frames.dtype}")
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(frame) for frame in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                       loop=0)
