"""Evaluators: run every (candidate, seed) rollout of a CMA-ES generation and return the returns.

An evaluator is called as ``evaluate(candidates (P, D), seeds (R,)) -> returns (P, R)``: candidate i's
parameters run one rollout per seed. The rollouts themselves are done by a *rollout worker*, any object
with ``run(params (N, D), seeds (N,)) -> returns (N,)`` (row n: one rollout of params[n] from seeds[n]),
built by a picklable zero-argument factory so Ray can build it inside an actor.

:class:`SerialEvaluator` runs one worker in this process; :class:`RayEvaluator` splits the P * R rollouts
into chunks over a pool of Ray actors (the worker factory, with any model weights it carries, put in the object
store once for every actor; the candidates once per generation), and replaces an actor that dies and redoes its
chunk, so the generation still completes. Given a ``progress`` label, it shows a bar of finished rollouts
(``worldmodels evaluate`` and ``calibrate``, silent for minutes otherwise; CMA-ES logs a line per generation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import ray
from tqdm.auto import tqdm

from rollouts.actor_pool import ACTOR_CPUS, DEFAULT_MAX_STALL_S, ReplacingActorPool, pool_size


class RolloutWorker(Protocol):
    """Runs rollouts of given parameter vectors."""

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Returns (N,) of one rollout per row of params (N, D), from episode seeds (N,)."""


WorkerFactory = Callable[[], RolloutWorker]


class Evaluator(Protocol):
    """``evaluate(candidates (P, D), seeds (R,)) -> returns (P, R)``; ``retried`` counts redone chunks and
    ``env_steps`` the real-environment steps of every finished rollout (0 for workers without ``env_steps``,
    such as dreams). An evaluator may also count the dream steps of its rollouts in ``dream_steps``
    (:class:`SerialEvaluator` and :class:`RayEvaluator` do; one without it counts none)."""

    retried: int
    env_steps: int

    def __call__(self, candidates: np.ndarray, seeds: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def _grid(candidates: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (candidate, seed) pair, row-major: candidate rows (P * R,), seeds (P * R,)."""
    rows = np.repeat(np.arange(len(candidates)), len(seeds))
    return rows, np.tile(np.asarray(seeds, np.int64), len(candidates))


class SerialEvaluator:
    """Runs every rollout in this process with one worker."""

    def __init__(self, make_worker: WorkerFactory) -> None:
        self.worker = make_worker()
        self.retried = 0

    @property
    def env_steps(self) -> int:
        """Real-environment steps the worker has taken."""
        return int(getattr(self.worker, "env_steps", 0))

    @property
    def dream_steps(self) -> int:
        """Dream steps the worker has taken."""
        return int(getattr(self.worker, "dream_steps", 0))

    def __call__(self, candidates: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        rows, flat_seeds = _grid(candidates, seeds)
        returns = self.worker.run(np.asarray(candidates)[rows], flat_seeds)
        return np.asarray(returns, np.float64).reshape(len(candidates), len(seeds))

    def close(self) -> None:
        """Nothing to release."""


class _RemoteWorker:
    """Ray actor body: one rollout worker, fed row indices into the generation's candidates."""

    def __init__(self, make_worker: WorkerFactory) -> None:
        self.worker = make_worker()

    def run(self, candidates: np.ndarray, rows: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, int, int]:
        """Returns (N,) of the rows' rollouts, and the real-environment and dream steps they took."""
        before = getattr(self.worker, "env_steps", 0), getattr(self.worker, "dream_steps", 0)
        returns = np.asarray(self.worker.run(candidates[rows], seeds), np.float64)
        return (returns, getattr(self.worker, "env_steps", 0) - before[0],
                getattr(self.worker, "dream_steps", 0) - before[1])


_RemoteWorkerActor = ray.remote(num_cpus=ACTOR_CPUS, max_restarts=0)(_RemoteWorker)


class RayEvaluator:
    """Splits a generation's P * R rollouts into chunks over ``num_workers`` Ray actors.

    Ray must already be initialised. ``make_worker`` goes into the object store once and every actor (a
    replacement too) builds its worker from that copy, so the weights it carries cross the network once per node,
    never as a path to this machine's disk. ``chunk_size`` rollouts go to an actor at a time (None: an even
    split, one chunk per actor). ``on_chunk(pool)`` is called after each finished chunk (tests use it
    to kill an actor mid-generation). With a ``progress`` label, each call shows a tqdm bar of its finished
    rollouts under that label (it moves a chunk at a time, so pair it with a small ``chunk_size``).
    """

    def __init__(self, make_worker: WorkerFactory, num_workers: int | None = None, chunk_size: int | None = None,
                 max_retries: int = 3, on_chunk: Callable[[ReplacingActorPool], None] | None = None,
                 max_stall_s: float = DEFAULT_MAX_STALL_S, progress: str | None = None) -> None:
        """:param max_stall_s: seconds without any finished chunk before a call gives up
            (:class:`rollouts.actor_pool.PoolStalledError`).
        :param progress: the label of a bar of finished rollouts shown during each call; None: no bar."""
        workers = pool_size(num_workers)
        factory = ray.put(make_worker)  # Ray hands each actor's constructor the object, not the ref
        self.pool: ReplacingActorPool = ReplacingActorPool(lambda: _RemoteWorkerActor.remote(factory), workers,
                                                           max_stall_s=max_stall_s)
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.on_chunk = on_chunk
        self.progress = progress
        self.env_steps = 0
        self.dream_steps = 0

    @property
    def retried(self) -> int:
        """Chunks of rollouts redone on a replaced actor since this evaluator was built."""
        return self.pool.retried

    def __call__(self, candidates: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        rows, flat_seeds = _grid(candidates, seeds)
        size = self.chunk_size or -(-len(rows) // len(self.pool.actors))
        chunks = [np.arange(start, min(start + size, len(rows))) for start in range(0, len(rows), size)]
        returns = np.full(len(rows), np.nan)
        candidates_ref = ray.put(np.asarray(candidates, np.float32))
        bar = tqdm(total=len(rows), desc=self.progress, unit="episode", disable=self.progress is None,
                   dynamic_ncols=True)

        def on_result(chunk: np.ndarray, values: tuple[np.ndarray, int, int]) -> None:
            returns[chunk] = values[0]
            self.env_steps += values[1]
            self.dream_steps += values[2]
            bar.update(len(chunk))
            if self.on_chunk is not None:
                self.on_chunk(self.pool)

        with bar:
            self.pool.map(
                chunks,
                lambda actor, chunk: actor.run.remote(candidates_ref, rows[chunk], flat_seeds[chunk]),
                on_result,
                self.max_retries,
                describe=lambda chunk: f"rollouts {chunk[0]}..{chunk[-1]} of the generation",
            )
        return returns.reshape(len(candidates), len(seeds))

    def close(self) -> None:
        """Kill the actors."""
        self.pool.shutdown()
