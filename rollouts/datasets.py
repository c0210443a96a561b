"""Streaming datasets over episode files: frames for V, fixed-length sequences for M.

Both read a few episodes at a time (``buffer_episodes``), shuffle within that buffer, and let go of
them before reading the next, so memory is bounded by the buffer, never by the number of episodes.
Each epoch visits every frame (or step) exactly once; the order depends on ``seed`` and the epoch
(:meth:`set_epoch`). Under a ``DataLoader`` with several workers, each worker streams its own share
of the episodes. Every episode must hold frames (or latents) of the first episode's size; one that does not
is refused, as it streams, with :class:`rollouts.storage.EpisodeFileError` naming the file and both sizes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from rollouts.storage import EpisodeFileError, episode_lengths, read_arrays, read_latents

_SAME_FRAMES = "gather every episode of a data set with the same env settings, or move this one out of the folder"
_SAME_LATENTS = "encode every episode of the folder with one V (`worldmodels encode`)"


class _EpisodeStream(IterableDataset):
    """Shared epoch, shuffling and worker-sharding logic over a list of episode files."""

    def __init__(self, files: Sequence[str | Path], shuffle: bool, buffer_episodes: int, seed: int):
        if not files:
            raise ValueError("the dataset needs at least one episode file")
        if buffer_episodes < 1:
            raise ValueError(f"buffer_episodes must be >= 1, got {buffer_episodes}")
        self.files = [Path(f) for f in files]
        self.lengths = episode_lengths(self.files)
        self.shuffle = shuffle
        self.buffer_episodes = buffer_episodes
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration follows."""
        self.epoch = epoch

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])

    def _episode_groups(self, rng: np.random.Generator) -> Iterator[list[int]]:
        """Indices into ``self.files`` for this worker, in buffer-sized groups."""
        order = rng.permutation(len(self.files)) if self.shuffle else np.arange(len(self.files))
        worker = get_worker_info()
        if worker is not None:
            order = order[worker.id :: worker.num_workers]
        for start in range(0, len(order), self.buffer_episodes):
            yield [int(i) for i in order[start : start + self.buffer_episodes]]

    def _checked(self, file: Path, name: str, array: np.ndarray, expected: tuple[int, ...], hint: str) -> np.ndarray:
        """``array`` (T+1, ...) of ``file``, once its per-step shape is ``expected`` (the first episode's)."""
        if array.shape[1:] != expected:
            raise EpisodeFileError(f"{file}: {name} of shape {array.shape[1:]} per step, but the data set's first "
                                   f"episode {self.files[0].name} has {expected}; {hint}")
        return array

    def _frames(self, file: Path) -> np.ndarray:
        """The observations (T+1, H, W, C) uint8 of ``file``, checked against the first episode's frame shape."""
        frames = read_arrays(file, ("observations",))["observations"]
        return self._checked(file, "frames", frames, self.frame_shape, _SAME_FRAMES)


class FrameDataset(_EpisodeStream):
    """Every stored frame, as a (C, H, W) uint8 tensor (divide by 255 on the device)."""

    def __init__(
        self, files: Sequence[str | Path], shuffle: bool = True, buffer_episodes: int = 8, seed: int = 0
    ):
        super().__init__(files, shuffle, buffer_episodes, seed)
        self.frame_shape = read_arrays(self.files[0], ("observations",))["observations"].shape[1:]  # (H, W, C)

    def __len__(self) -> int:
        return sum(length + 1 for length in self.lengths)

    def __iter__(self) -> Iterator[torch.Tensor]:
        rng = self._rng()
        for group in self._episode_groups(rng):
            frames = np.concatenate([self._frames(self.files[i]) for i in group])
            order = rng.permutation(len(frames)) if self.shuffle else range(len(frames))
            for index in order:
                yield torch.from_numpy(frames[index]).permute(2, 0, 1)  # (C, H, W)


class SequenceDataset(_EpisodeStream):
    """Windows of ``seq_len`` steps, padded and masked at episode ends, for sequence models.

    Each item is a dict of tensors (L = seq_len):

        observations  (L+1, H, W, C) uint8   when source="observations"
        mu, logvar    (L+1, Z) float32        when source="latents" (written by the encode stage)
        actions       (L, A) float32
        rewards       (L,) float32
        terminated    (L,) float32            1.0 where the environment ended the episode
        mask          (L,) float32            1.0 on real steps, 0.0 on padding

    An episode of T <= L steps is one window; a longer one is cut into windows of L steps starting at
    a random offset each epoch (when shuffling), so every step is used once per epoch.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        seq_len: int,
        source: Literal["observations", "latents"] = "latents",
        shuffle: bool = True,
        buffer_episodes: int = 32,
        seed: int = 0,
    ):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if source not in ("observations", "latents"):
            raise ValueError(f"source must be 'observations' or 'latents', got {source!r}")
        super().__init__(files, shuffle, buffer_episodes, seed)
        self.seq_len = seq_len
        self.source = source
        if source == "latents":
            self.latent_shape = read_latents(self.files[0])[0].shape[1:]  # (Z,)
        else:
            self.frame_shape = read_arrays(self.files[0], ("observations",))["observations"].shape[1:]  # (H, W, C)

    def _windows(self, steps: int, rng: np.random.Generator) -> list[tuple[int, int]]:
        """[start, end) step ranges covering 0..steps once, none longer than seq_len."""
        offset = int(rng.integers(self.seq_len)) if self.shuffle and steps > self.seq_len else 0
        bounds = sorted({0, *range(offset, steps, self.seq_len), steps})
        return list(zip(bounds[:-1], bounds[1:]))

    def __len__(self) -> int:
        """Windows per epoch without a random offset (a shuffled epoch may have up to one more per episode)."""
        return sum(-(-length // self.seq_len) for length in self.lengths)

    def _load(self, file: Path) -> dict[str, np.ndarray]:
        arrays = read_arrays(file, ("actions", "rewards", "terminated"))
        if self.source == "latents":
            mu, logvar = read_latents(file)
            arrays["mu"] = self._checked(file, "latents", mu, self.latent_shape, _SAME_LATENTS)
            arrays["logvar"] = logvar
        else:
            arrays["observations"] = self._frames(file)
        return arrays

    def _window(self, arrays: dict[str, np.ndarray], start: int, end: int) -> dict[str, torch.Tensor]:
        pad = self.seq_len - (end - start)
        item = {}
        for name in ("mu", "logvar", "observations"):
            if name in arrays:
                item[name] = _pad(arrays[name][start : end + 1], pad)
        item["actions"] = _pad(arrays["actions"][start:end].astype(np.float32), pad)
        item["rewards"] = _pad(arrays["rewards"][start:end].astype(np.float32), pad)
        item["terminated"] = _pad(arrays["terminated"][start:end].astype(np.float32), pad)
        item["mask"] = _pad(np.ones(end - start, np.float32), pad)
        return {name: torch.from_numpy(value) for name, value in item.items()}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = self._rng()
        for group in self._episode_groups(rng):
            loaded = [self._load(self.files[i]) for i in group]
            windows = [(k, s, e) for k, arrays in enumerate(loaded) for s, e in self._windows(len(arrays["actions"]), rng)]
            order = rng.permutation(len(windows)) if self.shuffle else range(len(windows))
            for w in order:
                k, start, end = windows[w]
                yield self._window(loaded[k], start, end)


def _pad(array: np.ndarray, count: int) -> np.ndarray:
    """``array`` with ``count`` zero rows appended along axis 0."""
    if count == 0:
        return np.ascontiguousarray(array)
    return np.concatenate([array, np.zeros((count, *array.shape[1:]), array.dtype)])
