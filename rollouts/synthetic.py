"""Synthetic episodes in the storage format, for tests and benchmarks that must not need a simulator or Ray.

Each frame (64x64x3 uint8) is a coloured square on black that the first two action dimensions move,
so frames depend on the actions the way an environment's would. Stand-in latents (a fixed random
projection of pooled frames) let sequence models train without a trained V.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rollouts.atomic import atomic_write_bytes
from rollouts.storage import Episode, episode_path, episode_to_bytes, read_arrays, write_latents


def make_synthetic_episode(index: int, steps: int, seed: int = 0, size: int = 64) -> Episode:
    """A coloured square moving with the action: frames (steps+1, size, size, 3) uint8, actions (steps, 3).

    Every frame's pixel [0, 0] holds the episode index and [0, 1] the frame number, so tests can tell which frame
    a dataset produced: channel 0 the low byte (``index % 256``), channel 1 the high byte, written only in
    episodes that reach 256 (episodes and frames below 256 are those of the one-byte numbering before). Reward 1
    where the second action dimension is positive; odd episodes end terminated, even ones truncated.
    """
    if not (0 <= index < 2**16 and 0 <= steps < 2**16):
        raise ValueError(f"synthetic episodes number their episodes and frames in two bytes: need index and steps "
                         f"in [0, 65535], got index {index} and steps {steps}")
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
        frames[t, 0, 0, 0], frames[t, 0, 1, 0] = index % 256, t % 256
        if index >= 256 or steps >= 256:
            frames[t, 0, 0, 1], frames[t, 0, 1, 1] = index // 256, t // 256
    rewards = (actions[:, 1] > 0).astype(np.float32)
    terminated = np.zeros(steps, bool)
    terminated[-1] = index % 2 == 1
    truncated = np.zeros(steps, bool)
    truncated[-1] = not terminated[-1]
    return Episode(frames, actions, rewards, terminated, truncated,
                   meta={"index": index, "seed": seed + index, "env_id": "synthetic", "policy": "uniform",
                         "length": steps, "return": float(rewards.sum()), "terminated": bool(terminated[-1])})


def write_synthetic_episodes(folder: str | Path, count: int, steps: int | list[int] = 20, seed: int = 0) -> list[Path]:
    """Write ``count`` synthetic episodes (``steps`` each, or one length per episode) into ``folder``."""
    lengths = steps if isinstance(steps, list) else [steps] * count
    paths = []
    for index, length in enumerate(lengths):
        path = episode_path(folder, index)
        atomic_write_bytes(path, episode_to_bytes(make_synthetic_episode(index, length, seed)))
        paths.append(path)
    return paths


def projected_latents(observations: np.ndarray, z_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stand-in posterior for frames (N, H, W, C) uint8 (H, W divisible by 8): mu is a fixed random
    projection of the frames average-pooled to 8x8, logvar a small constant (-4); each (N, z_size) float32."""
    n, height, width, channels = observations.shape
    pooled = observations.reshape(n, 8, height // 8, 8, width // 8, channels).mean(axis=(2, 4))  # (N, 8, 8, C)
    features = pooled.reshape(n, -1) / 255.0  # (N, 64C)
    projection = np.random.default_rng(seed).normal(size=(features.shape[1], z_size)) * 8 / np.sqrt(features.shape[1])
    mu = (features @ projection).astype(np.float32)  # (N, Z)
    return mu, np.full_like(mu, -4.0)


def write_projected_latents(files: list[Path], z_size: int, seed: int = 0) -> None:
    """Store :func:`projected_latents` beside each episode file, where the encode stage would."""
    for file in files:
        write_latents(file, *projected_latents(read_arrays(file, ("observations",))["observations"], z_size, seed))
