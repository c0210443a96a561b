"""Pictures written next to the numbers: animated GIFs of episodes and dreams, grids of frames and learning curves
as PNG."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

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


def write_image_grid(path: str | Path, frames: np.ndarray) -> None:
    """Write ``frames`` (R, N, H, W, C) uint8 as one PNG of R rows and N columns (R * H by N * W pixels; grey for
    C = 1, RGB for C = 3), atomically."""
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise ValueError(f"an image grid needs frames of shape (R, N, H, W, 1 or 3) uint8, got {frames.shape} "
                         f"{frames.dtype}")
    rows, columns, height, width, channels = frames.shape
    grid = frames.transpose(0, 2, 1, 3, 4).reshape(rows * height, columns * width, channels)  # (R * H, N * W, C)
    image = Image.fromarray(grid[..., 0] if channels == 1 else grid)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


class Series(NamedTuple):
    """One line of a plot: x (N,), y (N,) and optionally a std (N,) shaded as y +- std."""

    x: np.ndarray
    y: np.ndarray
    std: np.ndarray | None = None


def read_csv_columns(path: str | Path, columns: list[str], where: dict[str, str] | None = None,
                     skip_blank: bool = False) -> dict[str, np.ndarray]:
    """Float columns of a CSV log (rows filtered by ``where``: column -> value; with ``skip_blank``, rows with a
    blank or absent value in any of ``columns`` are left out, such as rows an older version wrote before a column
    existed); raises ValueError naming a missing column."""
    with Path(path).open() as file:
        rows = [row for row in csv.DictReader(file) if all(row.get(k) == v for k, v in (where or {}).items())]
    if skip_blank:
        rows = [row for row in rows if all(row.get(name) for name in columns)]
    missing = [name for name in columns if rows and name not in rows[0]]
    if missing:
        raise ValueError(f"{path} has no column(s) {missing}; it has {list(rows[0])}")
    return {name: np.array([float(row[name]) for row in rows]) for name in columns}


def new_figure(width: float = 6.0, height: float = 3.5):
    """A matplotlib (figure, axes) on the headless Agg backend, 100 dpi; save it with :func:`save_figure`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def save_figure(figure, png_path: str | Path) -> None:
    """Write ``figure`` as a PNG atomically (tight layout) and close it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, format="png")
    plt.close(figure)


def plot_series(png_path: str | Path, title: str, xlabel: str, series: dict[str, Series]) -> None:
    """Plot labelled lines (with optional +- std bands) into a PNG, written atomically."""
    figure, axes = new_figure()
    for label, line in series.items():
        axes.plot(line.x, line.y, label=label, marker="." if len(line.x) < 30 else None)
        if line.std is not None:
            axes.fill_between(line.x, line.y - line.std, line.y + line.std, alpha=0.2)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    save_figure(figure, png_path)
