"""Gather episodes with Ray actors and store one file per episode (see :mod:`rollouts.storage`).

Each actor owns ``envs_per_worker`` environments and one batched data policy; a task is a group of up to that
many episodes, which the actor steps in lock-step (:func:`run_episodes`: one policy call per step for every
episode still running, so a world-model policy runs V and M once per step for the group). It returns the
episodes already compressed, and the driver writes each atomically. An episode is a function of its seed alone,
whatever group or actor ran it. Only what is missing on disk is gathered, so re-running the same command
resumes. An actor that dies (or whose group raises) is replaced and the group retried, up to ``max_retries``
times (:class:`rollouts.actor_pool.ReplacingActorPool`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import ray
from tqdm.auto import tqdm

import envs  # noqa: F401  (registers the worldmodels/ ids)
from rollouts.actor_pool import ACTOR_CPUS, DEFAULT_MAX_STALL_S, ReplacingActorPool, TaskFailedError, pool_size
from rollouts.atomic import atomic_write_bytes
from rollouts.policies import DataPolicy, make_data_policy
from rollouts.policy_names import DataPolicyName
from rollouts.storage import (
    EPISODE_PATTERN,
    Episode,
    EpisodeFileError,
    episode_path,
    episode_to_bytes,
    manifest_entry,
    read_episode,
    read_episode_meta,
    read_manifest,
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


class BatchedDataPolicy(Protocol):
    """What the rollout workers need of a policy: actions for up to B lock-stepped episodes at once."""

    def reset(self, rngs: Sequence[np.random.Generator]) -> None:
        """Start ``len(rngs)`` episodes; all of episode i's randomness until the next reset comes from
        ``rngs[i]``, so its actions do not depend on the other episodes."""

    def __call__(self, observations: np.ndarray, rows: np.ndarray) -> Sequence[np.ndarray]:
        """The actions (L, ...) of episodes ``rows`` (L,) int, the episodes still running, for their current
        ``observations`` (L, ...)."""


class DataPolicySpec(Protocol):
    """A picklable recipe for the data policy each worker builds for itself (Ray builds it inside the actor)."""

    @property
    def name(self) -> str:
        """What the episode files record as their ``policy``."""

    def make_batch(self, action_space: gym.Space, size: int) -> BatchedDataPolicy:
        """The policy of up to ``size`` lock-stepped environments with ``action_space``."""


class PolicyPerEnv:
    """A :class:`BatchedDataPolicy` made of one single-env :class:`rollouts.policies.DataPolicy` per episode."""

    def __init__(self, policies: Sequence[DataPolicy]) -> None:
        self.policies = list(policies)

    def reset(self, rngs: Sequence[np.random.Generator]) -> None:
        if len(rngs) > len(self.policies):
            raise ValueError(f"{len(rngs)} episodes for {len(self.policies)} policies")
        for policy, rng in zip(self.policies, rngs):
            policy.reset(rng)

    def __call__(self, observations: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
        return [self.policies[row](observation) for observation, row in zip(observations, rows)]


@dataclass(frozen=True)
class PolicySpec:
    """Which data policy a worker runs (see :func:`rollouts.policies.make_data_policy`)."""

    name: DataPolicyName = "random_controller"
    brownian_sigma: float = 0.1
    controller_weight_std: float = 0.01
    max_repeat: int = 10

    def make(self, action_space: gym.Space) -> DataPolicy:
        """The policy of one environment."""
        return make_data_policy(self.name, action_space, self.brownian_sigma, self.controller_weight_std,
                                self.max_repeat)

    def make_batch(self, action_space: gym.Space, size: int) -> PolicyPerEnv:
        """One independent policy per environment."""
        return PolicyPerEnv([self.make(action_space) for _ in range(size)])


def run_episodes(environments: Sequence[gym.Env], policy: BatchedDataPolicy, seeds: Sequence[int]) -> list[Episode]:
    """Run one episode per seed, episode i in ``environments[i]`` from ``reset(seed=seeds[i])`` to termination or
    truncation, all in lock-step: each step one ``policy`` call for every episode still running.

    Episode i's policy randomness is seeded from ``seeds[i]`` too, so each episode is a function of its seed.
    """
    if len(seeds) > len(environments):
        raise ValueError(f"{len(seeds)} episodes for {len(environments)} environments")
    policy.reset([np.random.default_rng([seed, 1]) for seed in seeds])
    current = [env.reset(seed=seed)[0] for env, seed in zip(environments, seeds)]
    observations = [[observation] for observation in current]
    actions: list[list[np.ndarray]] = [[] for _ in seeds]
    rewards: list[list[float]] = [[] for _ in seeds]
    terminated: list[list[bool]] = [[] for _ in seeds]
    truncated: list[list[bool]] = [[] for _ in seeds]
    live = np.arange(len(seeds))  # the episodes still running
    while len(live):
        chosen = policy(np.stack([current[i] for i in live]), live)
        for i, action in zip(live, chosen):
            current[i], reward, term, trunc, _ = environments[i].step(action)
            observations[i].append(current[i])
            actions[i].append(action)
            rewards[i].append(reward)
            terminated[i].append(term)
            truncated[i].append(trunc)
        live = np.array([i for i in live if not (terminated[i][-1] or truncated[i][-1])], np.int64)
    return [Episode(
        observations=np.stack(observations[i]).astype(np.uint8),
        actions=np.stack(actions[i]).astype(np.float32 if np.asarray(actions[i][0]).dtype.kind == "f" else np.int64),
        rewards=np.asarray(rewards[i], np.float32),
        terminated=np.asarray(terminated[i], bool),
        truncated=np.asarray(truncated[i], bool),
    ) for i in range(len(seeds))]


def run_episode(env: gym.Env, policy: DataPolicy, seed: int) -> Episode:
    """Run one episode of a single-env ``policy`` from ``env.reset(seed=seed)`` (:func:`run_episodes` of one)."""
    return run_episodes([env], PolicyPerEnv([policy]), [seed])[0]


class EpisodeWorker:
    """Holds ``num_envs`` environments and one batched policy; runs groups of episodes by index in lock-step and
    returns them compressed."""

    def __init__(self, env_spec: EnvSpec, policy_spec: DataPolicySpec, num_envs: int = 1):
        if num_envs < 1:
            raise ValueError(f"a worker needs at least one environment, got num_envs {num_envs}")
        self.env_spec = env_spec
        self.envs = [env_spec.make() for _ in range(num_envs)]
        self.policy = policy_spec.make_batch(self.envs[0].action_space, num_envs)
        self.policy_name = policy_spec.name

    def run(self, index: int, seed: int) -> bytes:
        """Episode ``index`` from ``seed``, as an episode file's bytes."""
        return self.run_group([index], [seed])[0]

    def run_group(self, indices: Sequence[int], seeds: Sequence[int]) -> list[bytes]:
        """Episodes ``indices`` from ``seeds`` (at most ``num_envs`` of each), stepped together; their files' bytes."""
        episodes = run_episodes(self.envs, self.policy, [int(seed) for seed in seeds])
        for episode, index, seed in zip(episodes, indices, seeds):
            episode.meta = {
                "index": int(index),
                "seed": int(seed),
                "env_id": self.env_spec.id,
                "policy": self.policy_name,
                "length": episode.length,
                "return": episode.total_reward,
                "terminated": bool(episode.terminated[-1]),
            }
        return [episode_to_bytes(episode) for episode in episodes]


RemoteEpisodeWorker = ray.remote(num_cpus=ACTOR_CPUS, max_restarts=0)(EpisodeWorker)


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
    """Episodes 0..episodes-1 already on disk (index -> manifest entry) and the indices still to gather.

    A file the folder's manifest lists with its present size and modification time is the one this module wrote
    (atomically) or verified before, and is taken as listed. Any other file is read whole and validated
    (:func:`rollouts.storage.read_episode`: every array decompressed, so every zip CRC checked, and every action
    and reward finite), so a damaged file whose meta still reads is caught too: about 30 ms for a 1000-frame episode
    (0.7 MB), 5 minutes for 10,000 such episodes, against well under a second for the listed ones. A file that fails
    is renamed to ``*.corrupt`` (kept, not deleted) and gathered again.
    """
    listed = {entry.get("file"): entry for entry in (read_manifest(out_dir) or {}).get("entries", [])}
    done: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    for index in range(episodes):
        path = episode_path(out_dir, index)
        try:
            stat = path.stat()
        except FileNotFoundError:
            todo.append(index)
            continue
        entry = listed.get(path.name, {})  # the file name is the index's (episode_path)
        if (entry.get("bytes"), entry.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
            done[index] = entry
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
    envs_per_worker: int = 1,
    max_stall_s: float = DEFAULT_MAX_STALL_S,
) -> CollectReport:
    """Gather episodes ``first_index..episodes-1`` into ``out_dir`` (episode i uses seed ``seed + i``).

    Ray must already be initialised (:func:`rollouts.ray_cluster.init_ray`). ``policy_spec`` goes into Ray's
    object store once for every actor, so what it carries (a world model's weights) needs no disk shared with
    the workers; only this process reads and writes ``out_dir``. A folder holding another
    environment's episodes is refused (:func:`check_same_env`). Episodes already stored are skipped; the
    manifest lists every stored episode below ``episodes`` (those before ``first_index``, gathered by an
    earlier call, perhaps with another policy, included). Each worker steps up to ``envs_per_worker`` episodes
    in lock-step (fewer when there are too few episodes left to give every worker a full group); the episodes
    are the same whatever it is. ``on_episode(index, actors)`` is called after each stored episode (tests use it
    to kill a worker mid-run). Raises :class:`CollectError` when a group of episodes fails ``max_retries + 1``
    times, or when no group finishes for ``max_stall_s`` seconds.
    """
    if episodes < 0 or not 0 <= first_index <= episodes:
        raise ValueError(f"need 0 <= first_index <= episodes, got first_index {first_index} and episodes {episodes}")
    if envs_per_worker < 1:
        raise ValueError(f"envs_per_worker must be >= 1, got {envs_per_worker}")
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

    workers = pool_size(num_workers, len(todo))
    size = min(envs_per_worker, -(-len(todo) // workers))  # a full group per worker when episodes run short
    groups = [tuple(todo[start:start + size]) for start in range(0, len(todo), size)]
    policy_ref = ray.put(policy_spec)  # once, whatever it carries (a world model's weights), for every actor
    pool = ReplacingActorPool(lambda: RemoteEpisodeWorker.remote(env_spec, policy_ref, size), workers,
                              max_stall_s=max_stall_s)
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

    def store_group(group: tuple[int, ...], files: list[bytes]) -> None:
        for index, data in zip(group, files):
            store(index, data)

    def describe(group: tuple[int, ...]) -> str:
        if len(group) == 1:
            return f"episode {group[0]} (seed {seed + group[0]})"
        return (f"episodes {', '.join(map(str, group))} (seeds {', '.join(str(seed + index) for index in group)}, "
                "stepped together)")

    submitted: set[tuple[int, ...]] = set()

    def submit(actor: Any, group: tuple[int, ...]) -> ray.ObjectRef:
        if group in submitted:
            report.retried += len(group)  # episodes, whatever the group size
        submitted.add(group)
        return actor.run_group.remote(group, [seed + index for index in group])

    try:
        pool.map(groups, submit, store_group, max_retries, describe=describe)
    except TaskFailedError as err:
        raise CollectError(str(err)) from err.__cause__
    finally:
        bar.close()
        write_manifest(out_dir, list(entries.values()))
        pool.shutdown()
    report.seconds = time.perf_counter() - start
    return report
