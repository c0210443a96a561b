"""Datasets over episode files: frames for V, fixed-length sequences for M, streamed or held on a device.

Both read a few episodes at a time (``buffer_episodes``), shuffle within that buffer, and let go of
them before reading the next, so memory is bounded by the buffer, never by the number of episodes.
Each epoch visits every frame (or step) exactly once; the order depends on ``seed`` and the epoch
(:meth:`set_epoch`). Under a ``DataLoader`` with several workers, each worker streams its own share
of the episodes. Every episode must hold frames (or latents) of the first episode's size; one that does not
is refused, as it streams, with :class:`rollouts.storage.EpisodeFileError` naming the file and both sizes.

Items or batches: by default a dataset yields one item at a time (a frame, a window) for a ``DataLoader`` to
collate. With ``batch_size`` it yields whole batches instead, each built by one tensor index into the buffer
(no Python work per frame); iterate it with ``DataLoader(dataset, batch_size=None)``. Batches follow the
item order exactly: with one process, batch k holds items k*B to (k+1)*B-1 of the same epoch's item order,
the last batch of an epoch being shorter when B does not divide the item count.

Resident data: :meth:`to` loads every episode once onto a device (uint8 frames, float32 latents); each epoch
then permutes all items of the data set at once (not buffer by buffer) and gathers batches there. Its memory
is the data set's (:attr:`nbytes`), so it is for data sets that fit on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from rollouts.storage import EpisodeFileError, episode_lengths, read_arrays, read_latents

_SAME_FRAMES = "gather every episode of a data set with the same env settings, or move this one out of the folder"
_SAME_LATENTS = "encode every episode of the folder with one V (`worldmodels encode`)"

Batch = Any
"""A tensor (frames) or a dict of tensors (sequences), with a leading batch axis."""


class _EpisodeStream(IterableDataset, ABC):
    """Shared epoch, shuffling, buffering, batching, residency and worker-sharding logic over episode files.

    A subclass says how a group of episodes becomes a table in memory (``_load``), which items the table
    holds this epoch (``_items``: their count and a description ``_take`` needs) and how to gather items
    by index into a batch (``_take``).
    """

    def __init__(self, files: Sequence[str | Path], shuffle: bool, buffer_episodes: int, seed: int,
                 batch_size: int | None):
        if not files:
            raise ValueError("the dataset needs at least one episode file")
        if buffer_episodes < 1:
            raise ValueError(f"buffer_episodes must be >= 1, got {buffer_episodes}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None (items), got {batch_size}")
        self.files = [Path(f) for f in files]
        self.lengths = episode_lengths(self.files)
        self.shuffle = shuffle
        self.buffer_episodes = buffer_episodes
        self.seed = seed
        self.batch_size = batch_size
        self.epoch = 0
        self.device: torch.device | None = None
        """Where every episode is held (see :meth:`to`); None: streamed from disk."""
        self._resident: Any = None

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration follows."""
        self.epoch = epoch

    def to(self, device: torch.device | str) -> _EpisodeStream:
        """Hold every episode on ``device`` (:attr:`nbytes` of memory there), loaded once when the first
        iteration starts, and draw items from there; returns the dataset. Iterate it without DataLoader workers."""
        self.device = torch.device(device)
        self._resident = None
        return self

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes the table of every episode takes (what :meth:`to` puts on the device)."""

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

    @abstractmethod
    def _load(self, group: list[int]) -> Any:
        """The table of the episodes ``group`` (indices into ``self.files``, in that order), on the CPU."""

    @abstractmethod
    def _load_all(self, groups: list[list[int]], device: torch.device) -> Any:
        """The table of every episode (``groups`` in order) on ``device``."""

    @abstractmethod
    def _items(self, table: Any, rng: np.random.Generator) -> tuple[int, Any]:
        """How many items ``table`` holds this epoch, and what :meth:`_take` needs to find them."""

    @abstractmethod
    def _take(self, table: Any, items: Any, index: np.ndarray) -> Batch:
        """The items ``index`` (B,) int64 of ``table``, as a batch with a leading axis of B."""

    def _tables(self, rng: np.random.Generator) -> Iterator[tuple[Callable[[np.ndarray], Batch], np.ndarray]]:
        """This epoch's tables in turn, each as (take, order): a gather by item index and the item order."""
        if self.device is not None:
            if get_worker_info() is not None:
                raise ValueError(f"this dataset is held on {self.device}: iterate it without DataLoader workers")
            if self._resident is None:
                groups = [list(range(start, min(start + self.buffer_episodes, len(self.files))))
                          for start in range(0, len(self.files), self.buffer_episodes)]
                self._resident = self._load_all(groups, self.device)
            tables: Iterator[Any] = iter([self._resident])
        else:
            tables = (self._load(group) for group in self._episode_groups(rng))
        for table in tables:
            count, items = self._items(table, rng)
            order = rng.permutation(count) if self.shuffle else np.arange(count)
            yield (lambda index, table=table, items=items: self._take(table, items, index)), order

    def __iter__(self) -> Iterator[Batch]:
        batches = _batched(self._tables(self._rng()), self.batch_size or 1)
        if self.batch_size is not None:
            return batches
        return (_first(batch) for batch in batches)

    def _batches_or_items(self, items: int) -> int:
        """What one epoch yields, with one process: ``items``, or the batches they fill."""
        return items if self.batch_size is None else -(-items // self.batch_size)


class FrameDataset(_EpisodeStream):
    """Every stored frame: as (C, H, W) uint8 tensors, or with ``batch_size`` as (B, C, H, W) uint8 batches
    (divide by 255 on the device)."""

    def __init__(
        self, files: Sequence[str | Path], shuffle: bool = True, buffer_episodes: int = 8, seed: int = 0,
        batch_size: int | None = None,
    ):
        super().__init__(files, shuffle, buffer_episodes, seed, batch_size)
        self.frame_shape = read_arrays(self.files[0], ("observations",))["observations"].shape[1:]  # (H, W, C)
        self.frame_count = sum(length + 1 for length in self.lengths)

    def __len__(self) -> int:
        """Frames per epoch, or the batches they fill."""
        return self._batches_or_items(self.frame_count)

    @property
    def nbytes(self) -> int:
        return self.frame_count * int(np.prod(self.frame_shape))

    def _load(self, group: list[int]) -> torch.Tensor:
        episodes = [self._frames(self.files[i]) for i in group]  # each (T+1, H, W, C)
        height, width, channels = self.frame_shape
        frames = np.empty((sum(map(len, episodes)), channels, height, width), np.uint8)
        start = 0
        for episode in episodes:  # one copy, transposing
            frames[start : start + len(episode)] = episode.transpose(0, 3, 1, 2)
            start += len(episode)
        return torch.from_numpy(frames)  # (N, C, H, W)

    def _load_all(self, groups: list[list[int]], device: torch.device) -> torch.Tensor:
        height, width, channels = self.frame_shape
        frames = torch.empty((self.frame_count, channels, height, width), dtype=torch.uint8, device=device)
        start = 0
        for group in groups:  # one buffer at a time: host memory stays bounded by the buffer
            part = self._load(group)  # (n, C, H, W)
            frames[start : start + len(part)].copy_(part)
            start += len(part)
        return frames  # (N, C, H, W)

    def _items(self, table: torch.Tensor, rng: np.random.Generator) -> tuple[int, None]:
        return len(table), None

    def _take(self, table: torch.Tensor, items: None, index: np.ndarray) -> torch.Tensor:
        return _gather(table, index)  # (B, C, H, W)


@dataclass
class _Steps:
    """Episodes laid end to end: arrays per frame (T+1 rows each) and per step (T rows each), plus one zero
    row at the end of every array, which padding points to."""

    frame_arrays: dict[str, torch.Tensor]
    """observations (N+1, H, W, C) uint8, or mu and logvar (N+1, Z) float32."""
    step_arrays: dict[str, torch.Tensor]
    """actions (S+1, A), rewards (S+1,), terminated (S+1,), all float32."""
    lengths: np.ndarray
    """Steps T of each episode, in table order."""

    def to(self, device: torch.device) -> _Steps:
        return _Steps({k: v.to(device) for k, v in self.frame_arrays.items()},
                      {k: v.to(device) for k, v in self.step_arrays.items()}, self.lengths)


class SequenceDataset(_EpisodeStream):
    """Windows of ``seq_len`` steps, padded and masked at episode ends, for sequence models.

    Each item is a dict of tensors (L = seq_len); with ``batch_size``, each batch is the same dict with a
    leading batch axis B:

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
        batch_size: int | None = None,
    ):
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if source not in ("observations", "latents"):
            raise ValueError(f"source must be 'observations' or 'latents', got {source!r}")
        super().__init__(files, shuffle, buffer_episodes, seed, batch_size)
        self.seq_len = seq_len
        self.source = source
        first = read_arrays(self.files[0], ("actions",))["actions"]
        self.action_shape = first.shape[1:]  # (A,) or () for discrete actions
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
        """Windows per epoch without a random offset (a shuffled epoch may have up to one more per episode),
        or the batches they fill."""
        return self._batches_or_items(sum(-(-length // self.seq_len) for length in self.lengths))

    @property
    def nbytes(self) -> int:
        frames, steps = sum(self.lengths) + len(self.lengths), sum(self.lengths)
        if self.source == "latents":
            per_frame = 2 * 4 * int(np.prod(self.latent_shape))  # mu and logvar, float32
        else:
            per_frame = int(np.prod(self.frame_shape))  # uint8
        return frames * per_frame + steps * 4 * (int(np.prod(self.action_shape)) + 2)  # actions, reward, done

    def _episode_arrays(self, file: Path) -> dict[str, np.ndarray]:
        arrays = read_arrays(file, ("actions", "rewards", "terminated"))
        if self.source == "latents":
            mu, logvar = read_latents(file)
            arrays["mu"] = self._checked(file, "latents", mu, self.latent_shape, _SAME_LATENTS)
            arrays["logvar"] = logvar
        else:
            arrays["observations"] = self._frames(file)
        return arrays

    def _load(self, group: list[int]) -> _Steps:
        episodes = [self._episode_arrays(self.files[i]) for i in group]
        frame_names = ("mu", "logvar") if self.source == "latents" else ("observations",)
        step_names = ("actions", "rewards", "terminated")

        def joined(name: str, dtype: Any = None) -> torch.Tensor:
            parts = [e[name] if dtype is None else e[name].astype(dtype) for e in episodes]
            return torch.from_numpy(np.concatenate([*parts, np.zeros((1, *parts[0].shape[1:]), parts[0].dtype)]))

        return _Steps({name: joined(name) for name in frame_names},
                      {name: joined(name, np.float32) for name in step_names},
                      np.array([len(e["actions"]) for e in episodes], np.int64))

    def _load_all(self, groups: list[list[int]], device: torch.device) -> _Steps:
        return self._load([i for group in groups for i in group]).to(device)

    def _items(self, table: _Steps, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """Every window of the table this epoch, as rows (first frame row, first step row, steps) (W, 3)."""
        frame_starts = np.concatenate([[0], np.cumsum(table.lengths + 1)[:-1]])
        step_starts = np.concatenate([[0], np.cumsum(table.lengths)[:-1]])
        windows = [(frame_start + start, step_start + start, end - start)
                   for frame_start, step_start, steps in zip(frame_starts, step_starts, table.lengths)
                   for start, end in self._windows(int(steps), rng)]
        return len(windows), np.array(windows, np.int64).reshape(-1, 3)  # (W, 3)

    def _take(self, table: _Steps, windows: np.ndarray, index: np.ndarray) -> dict[str, torch.Tensor]:
        chosen = windows[index]  # (B, 3)
        steps = chosen[:, 2:]  # (B, 1)
        offsets = np.arange(self.seq_len + 1)  # (L+1,)
        frame_pad = len(next(iter(table.frame_arrays.values()))) - 1
        frame_rows = np.where(offsets <= steps, chosen[:, :1] + offsets, frame_pad)  # (B, L+1)
        real = offsets[:-1] < steps  # (B, L)
        step_rows = np.where(real, chosen[:, 1:2] + offsets[:-1], len(table.step_arrays["actions"]) - 1)  # (B, L)
        batch = {name: _gather(array, frame_rows) for name, array in table.frame_arrays.items()}  # (B, L+1, ...)
        batch.update({name: _gather(array, step_rows) for name, array in table.step_arrays.items()})  # (B, L, ...)
        batch["mask"] = torch.from_numpy(real.astype(np.float32)).to(self.device)  # (B, L)
        return batch


def _gather(array: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """``array[rows]``: the rows (any shape of int64) of ``array``, as (*rows.shape, *array.shape[1:]).

    On the CPU through numpy, whose gather runs on one thread: torch's indexing there is several times slower
    and stalls when its threads share the cores with other work. On a GPU, torch's ``index_select``.
    """
    if array.device.type == "cpu":
        return torch.from_numpy(array.numpy()[rows])
    index = torch.from_numpy(rows).to(array.device).flatten()
    return array.index_select(0, index).view(*rows.shape, *array.shape[1:])


def _batched(tables: Iterator[tuple[Callable[[np.ndarray], Batch], np.ndarray]], batch_size: int) -> Iterator[Batch]:
    """Batches of ``batch_size`` items following each table's order, tables in turn (a batch may span two);
    the last one shorter when the items run out."""
    parts: list[Batch] = []
    count = 0
    for take, order in tables:
        start = 0
        while start < len(order):
            n = min(batch_size - count, len(order) - start)
            parts.append(take(order[start : start + n]))
            count, start = count + n, start + n
            if count == batch_size:
                yield _joined(parts)
                parts, count = [], 0
    if parts:
        yield _joined(parts)


def _joined(parts: list[Batch]) -> Batch:
    """The parts of one batch, concatenated along the batch axis."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], dict):
        return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
    return torch.cat(parts)


def _first(batch: Batch) -> Batch:
    """The only item of a batch of one, without the batch axis."""
    if isinstance(batch, dict):
        return {name: value[0] for name, value in batch.items()}
    return batch[0]
