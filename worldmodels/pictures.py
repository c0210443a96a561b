"""Pictures written next to the numbers: animated GIFs of episodes and dreams, learning curves as PNG."""

from __future__ import annotations

import csv
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


def plot_learning_curves(csv_path: str | Path, x: str, columns: list[str], png_path: str | Path, title: str,
                         band: tuple[str, str] | None = None) -> None:
    """Plot ``columns`` of the CSV log at ``csv_path`` against column ``x`` into a PNG (written atomically).

    ``band = (mean_column, std_column)`` also shades mean +- std. Raises ValueError naming a missing column.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Path(csv_path).open() as file:
        rows = list(csv.DictReader(file))
    needed = [x, *columns, *(band or ())]
    missing = [name for name in needed if rows and name not in rows[0]]
    if missing:
        raise ValueError(f"{csv_path} has no column(s) {missing}; it has {list(rows[0])}")
    values = {name: np.array([float(row[name]) for row in rows]) for name in needed}
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name in columns:
        axes.plot(values[x], values[name], label=name)
    if band is not None:
        mean, std = values[band[0]], values[band[1]]
        axes.fill_between(values[x], mean - std, mean + std, alpha=0.25, label=f"{band[0]} +- std")
    axes.set_xlabel(x)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)
