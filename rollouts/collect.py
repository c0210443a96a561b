"""Gather episodes with Ray actors and store one file per episode (see :mod:`rollouts.storage`).

Each actor owns one environment and one data policy and runs whole episodes; it returns the episode
already compressed, and the driver writes it atomically. Only what is missing on disk is gathered, so
re-running the same command resumes. An actor that dies (or whose episode raises) is replaced and the
episode retried, up to ``max_retries`` times (:class:`rollouts.actor_pool.ReplacingActorPool`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import ray
from tqdm.auto import tqdm

import envs  # noqa: F401  (registers the worldmodels/ ids)
from rollouts.actor_pool import ReplacingActorPool, TaskFailedError
from rollouts.atomic import atomic_write_bytes
from rollouts.policies import DataPolicy, make_data_policy
from rollouts.storage import (
    EPISODE_PATTERN,
    Episode,
    EpisodeFileError,
    episode_path,
    episode_to_bytes,
    manifest_entry,
    read_episode,
    read_episode_meta,
    write_manifest,
)

log = logging.getLogger(__name__)


class CollectError(RuntimeError):
    """An episode kept failing after every retry; the message carries the last error."""


@dataclass(frozen=True)
class EnvSpec:
    """How a worker builds its environment: ``gymnasium.make(id, max_episode_steps, **options)``."""

    id: str
    max_episode_steps: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def make(self) -> gym.Env:
        try:
            return gym.make(self.id, max_episode_steps=self.max_episode_steps, **self.options)
        except gym.error.Error as err:
            raise ValueError(f"cannot make environment {self.id!r}: {err}. Registered world-model ids: "
                             f"{[i for i in gym.registry if i.startswith('worldmodels/')]}") from None
        except TypeError as err:
            raise ValueError(f"environment {self.id!r} refused the options {self.options}: {err}") from None


class DataPolicySpec(Protocol):
    """A picklable recipe for the data policy each worker builds for itself (Ray builds it inside the actor)."""

    @property
    def name(self) -> str:
        """What the episode files record as their ``policy``."""

    def make(self, action_space: gym.Space) -> DataPolicy:
        """The policy, for an environment with ``action_space``."""


@dataclass(frozen=True)
class PolicySpec:
    """Which data policy a worker runs (see :func:`rollouts.policies.make_data_policy`)."""

    name: str = "random_controller"
    brownian_sigma: float = 0.1
    controller_weight_std: float = 0.01
    max_repeat: int = 10

    def make(self, action_space: gym.Space) -> DataPolicy:
        return make_data_policy(self.name, action_space, self.brownian_sigma, self.controller_weight_std,
                                self.max_repeat)


def run_episode(env: gym.Env, policy: DataPolicy, seed: int) -> Episode:
    """Run one episode from ``env.reset(seed=seed)`` to termination or truncation.

    The policy's randomness is seeded from ``seed`` too, so the episode is a function of the seed.
    """
    policy.reset(np.random.default_rng([seed, 1]))
    observation, _ = env.reset(seed=seed)
    observations, actions, rewards, terminated, truncated = [observation], [], [], [], []
    done = False
    while not done:
        action = policy(observation)
        observation, reward, term, trunc, _ = env.step(action)
        observations.append(observation)
        actions.append(action)
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
        done = term or trunc
    return Episode(
        observations=np.stack(observations).astype(np.uint8),
        actions=np.stack(actions).astype(np.float32 if np.asarray(actions[0]).dtype.kind == "f" else np.int64),
        rewards=np.asarray(rewards, np.float32),
        terminated=np.asarray(terminated, bool),
        truncated=np.asarray(truncated, bool),
    )


class EpisodeWorker:
    """Holds one environment and one policy; runs episodes by index and returns them compressed."""

    def __init__(self, env_spec: EnvSpec, policy_spec: DataPolicySpec):
        self.env_spec = env_spec
        self.env = env_spec.make()
        self.policy = policy_spec.make(self.env.action_space)
        self.policy_name = policy_spec.name

    def run(self, index: int, seed: int) -> bytes:
        episode = run_episode(self.env, self.policy, seed)
        episode.meta = {
            "index": index,
            "seed": seed,
            "env_id": self.env_spec.id,
            "policy": self.policy_name,
            "length": episode.length,
            "return": episode.total_reward,
            "terminated": bool(episode.terminated[-1]),
        }
        return episode_to_bytes(episode)


RemoteEpisodeWorker = ray.remote(num_cpus=1, max_restarts=0)(EpisodeWorker)


@dataclass
class CollectReport:
    """What a collect run did."""

    collected: int = 0
    skipped: int = 0
    retried: int = 0
    frames: int = 0
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (f"{self.collected} episodes gathered, {self.skipped} already on disk, {self.retried} retried; "
                f"{self.frames} frames in {self.seconds:.1f} s ({self.frames_per_second:.0f} frames/s)")


def check_same_env(out_dir: Path, env_id: str) -> None:
    """Refuse to gather ``env_id``'s episodes into a folder that holds another environment's (read from each
    episode file's meta; files whose meta does not read are left to :func:`scan_existing`).

    :raises ValueError: naming both environment ids, the folder and what to do.
    """
    if not out_dir.is_dir():
        return
    others: dict[str, str] = {}
    for path in sorted(p for p in out_dir.iterdir() if EPISODE_PATTERN.match(p.name)):
        try:
            found = str(read_episode_meta(path).get("env_id"))
        except EpisodeFileError:
            continue
        if found != env_id:
            others.setdefault(found, path.name)
    if others:
        held = ", ".join(f"{other!r} (e.g. {name})" for other, name in others.items())
        raise ValueError(f"{out_dir} holds episodes of {held}, and this collect runs {env_id!r}: one folder holds "
                         "one environment's episodes, or V and M would train on both. Collect into another --out "
                         "folder, or move those episodes away")


def scan_existing(out_dir: Path, episodes: int) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """Episodes 0..episodes-1 already on disk (index -> meta) and the indices still to gather.

    Each file is read whole and validated (:func:`rollouts.storage.read_episode`: every array decompressed, so
    every zip CRC checked, and every action and reward finite), so a damaged file whose meta still reads is
    caught too. That costs about what a CRC test alone does (``ZipFile.testzip`` also decompresses
    everything): about 30 ms for a 1000-frame episode (0.7 MB), 5 minutes for 10,000 such episodes, against
    ~0.1 ms for the meta alone. A file that fails is renamed to ``*.corrupt`` (kept, not deleted) and gathered
    again.
    """
    done: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    for index in range(episodes):
        path = episode_path(out_dir, index)
        if not path.exists():
            todo.append(index)
            continue
        try:
            done[index] = manifest_entry(path, read_episode(path).meta)
        except EpisodeFileError as err:
            aside = path.with_name(path.name + ".corrupt")
            log.warning("%s; moving it to %s and gathering the episode again", err, aside.name)
            path.rename(aside)
            todo.append(index)
    return done, todo


def collect_episodes(
    out_dir: str | Path,
    env_spec: EnvSpec,
    policy_spec: DataPolicySpec,
    episodes: int,
    seed: int = 0,
    num_workers: int | None = None,
    max_retries: int = 3,
    progress: bool = True,
    on_episode: Callable[[int, list[Any]], None] | None = None,
    first_index: int = 0,
) -> CollectReport:
    """Gather episodes ``first_index..episodes-1`` into ``out_dir`` (episode i uses seed ``seed + i``).

    Ray must already be initialised (:func:`rollouts.ray_cluster.init_ray`). A folder holding another
    environment's episodes is refused (:func:`check_same_env`). Episodes already stored are skipped; the
    manifest lists every stored episode below ``episodes`` (those before ``first_index``, gathered by an
    earlier call, perhaps with another policy, included). ``on_episode(index, actors)`` is
    called after each stored episode (tests use it to kill a worker mid-run). Raises :class:`CollectError`
    when an episode fails ``max_retries + 1`` times.
    """
    if episodes < 0 or not 0 <= first_index <= episodes:
        raise ValueError(f"need 0 <= first_index <= episodes, got first_index {first_index} and episodes {episodes}")
    out_dir = Path(out_dir)
    check_same_env(out_dir, env_spec.id)
    out_dir.mkdir(parents=True, exist_ok=True)
    env_spec.make().close()  # a wrong id or option fails here, once, with a clear message
    entries, todo = scan_existing(out_dir, episodes)
    todo = [index for index in todo if index >= first_index]
    report = CollectReport(skipped=sum(index >= first_index for index in entries))
    if not todo:
        write_manifest(out_dir, list(entries.values()))
        return report

    workers = min(num_workers or int(ray.cluster_resources().get("CPU", 1)), len(todo))
    pool = ReplacingActorPool(lambda: RemoteEpisodeWorker.remote(env_spec, policy_spec), max(workers, 1))
    start = time.perf_counter()
    last_manifest = start
    bar = tqdm(total=len(todo), unit="ep", desc="collect", disable=not progress, dynamic_ncols=True)

    def store(index: int, data: bytes) -> None:
        nonlocal last_manifest
        path = episode_path(out_dir, index)
        atomic_write_bytes(path, data)
        entries[index] = manifest_entry(path, read_episode_meta(path))
        report.collected += 1
        report.frames += entries[index]["length"] + 1
        report.seconds = time.perf_counter() - start
        bar.update(1)
        bar.set_postfix(frames=report.frames, fps=f"{report.frames_per_second:.0f}", retried=pool.retried)
        if time.perf_counter() - last_manifest > 10:
            write_manifest(out_dir, list(entries.values()))
            last_manifest = time.perf_counter()
        if on_episode is not None:
            on_episode(index, pool.actors)

    try:
        report.retried = pool.map(todo, lambda actor, index: actor.run.remote(index, seed + index), store,
                                  max_retries, describe=lambda index: f"episode {index} (seed {seed + index})")
    except TaskFailedError as err:
        raise CollectError(str(err)) from err.__cause__
    finally:
        bar.close()
        write_manifest(out_dir, list(entries.values()))
        pool.shutdown()
    report.seconds = time.perf_counter() - start
    return report
