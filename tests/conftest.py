"""Shared test fixtures: synthetic episode folders written in the real storage format (no Ray, no Box2D), and a
synthetic rollout worker that counts env steps as a real env's worker does.

The generators live in ``rollouts.synthetic`` (the benchmarks use them too) and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rollouts.synthetic import make_synthetic_episode, write_projected_latents, write_synthetic_episodes

__all__ = ["StepCountingWorker", "make_synthetic_episode", "write_synthetic_episodes", "write_projected_latents"]


class StepCountingWorker:
    """Synthetic real-env rollouts: the episode from seed s lasts 1 + s % 7 steps, counted in ``env_steps``; the
    return of parameters p (D,) is -|p|^2."""

    def __init__(self) -> None:
        self.env_steps = 0

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Returns (N,) for params (N, D) and seeds (N,)."""
        self.env_steps += int(np.sum(1 + seeds % 7))
        return -np.sum(params ** 2, axis=1)


@pytest.fixture
def synthetic_episodes(tmp_path: Path) -> Path:
    """A folder of 6 synthetic episodes of 20 steps (21 frames) each."""
    folder = tmp_path / "episodes"
    write_synthetic_episodes(folder, 6, 20)
    return folder


@pytest.fixture
def episode_folder(tmp_path: Path) -> Callable[..., Path]:
    """Make a fresh folder of synthetic episodes: ``episode_folder(count, steps, latents_z=None, latents_seed=0)``;
    with ``latents_z``, stand-in latents of that size (projected with ``latents_seed``) are stored beside each
    episode."""
    made = 0

    def make(count: int = 4, steps: int | list[int] = 15, latents_z: int | None = None, latents_seed: int = 0) -> Path:
        nonlocal made
        made += 1
        folder = tmp_path / f"episodes{made}"
        files = write_synthetic_episodes(folder, count, steps)
        if latents_z is not None:
            write_projected_latents(files, latents_z, latents_seed)
        return folder

    return make


@pytest.fixture
def one_torch_thread():
    """Small convolutions run several times faster on one thread than on two cores shared with other work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
