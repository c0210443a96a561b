"""Shared test fixtures: synthetic episode folders written in the real storage format (no Ray, no Box2D)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rollouts.atomic import atomic_write_bytes
from rollouts.storage import Episode, episode_path, episode_to_bytes


def make_synthetic_episode(index: int, steps: int, seed: int = 0, size: int = 64) -> Episode:
    """A coloured square moving with the action: frames (steps+1, size, size, 3) uint8.

    Every frame's pixel [0, 0, 0] holds the episode index and [0, 1, 0] the frame number, so tests can
    tell which frame a dataset produced.
    """
    rng = np.random.default_rng([seed, index])
    actions = rng.uniform(-1, 1, (steps, 3)).astype(np.float32)
    position = rng.integers(8, size - 24, 2).astype(float)
    colour = rng.integers(64, 256, 3)
    frames = np.zeros((steps + 1, size, size, 3), np.uint8)
    for t in range(steps + 1):
        if t:
            position = np.clip(position + 3 * actions[t - 1, :2], 0, size - 16)
        row, col = position.astype(int)
        frames[t, row : row + 16, col : col + 16] = colour
        frames[t, 0, 0, 0], frames[t, 0, 1, 0] = index, t
    rewards = (actions[:, 1] > 0).astype(np.float32)
    terminated = np.zeros(steps, bool)
    terminated[-1] = index % 2 == 1
    truncated = np.zeros(steps, bool)
    truncated[-1] = not terminated[-1]
    return Episode(frames, actions, rewards, terminated, truncated,
                   meta={"index": index, "seed": seed + index, "env_id": "synthetic", "policy": "uniform",
                         "length": steps, "return": float(rewards.sum()), "terminated": bool(terminated[-1])})


def write_synthetic_episodes(folder: Path, count: int, steps: int | list[int] = 20, seed: int = 0) -> list[Path]:
    """Write ``count`` synthetic episodes (``steps`` each, or one length per episode) into ``folder``."""
    lengths = steps if isinstance(steps, list) else [steps] * count
    paths = []
    for index, length in enumerate(lengths):
        path = episode_path(folder, index)
        atomic_write_bytes(path, episode_to_bytes(make_synthetic_episode(index, length, seed)))
        paths.append(path)
    return paths


@pytest.fixture
def synthetic_episodes(tmp_path: Path) -> Path:
    """A folder of 6 synthetic episodes of 20 steps (21 frames) each."""
    folder = tmp_path / "episodes"
    write_synthetic_episodes(folder, 6, 20)
    return folder
