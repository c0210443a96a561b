"""Rollout collection throughput: frames/s for one Ray worker and for N, against a plain loop.

    python benchmarks/collect.py --episodes 4 --steps 200 --workers 2
    python benchmarks/collect.py --policy controller --env worldmodels/CarRacingFast-v0 --episodes 16 --steps 300 \\
        --workers 2 --envs-per-worker 8

The reference is the same episodes stepped in this process without Ray (one episode after another, torch on
one thread as in a Ray worker); scaling efficiency = frames/s with N workers / (N x frames/s with 1 worker).
``--policy controller`` gathers with a world model (untrained, paper-sized V and M: z 32, LSTM 256; a random
867-parameter C), as the iterative procedure does; its "lock-stepped" and "batched" rows step
``--envs-per-worker`` envs per process or worker in lock-step with one batched V+M, against the same loop or
workers stepping one env each (the layout before batching; last column), and its last row gathers with the
random-controller policy (no model: what the env alone allows). Each row is the fastest of ``--rounds``
rounds, the rows of a round measured one after another, so a load that comes and goes on a shared machine
biases no row. Ray rows include starting the workers (for a world model: importing torch, loading V and M).

``--nodes 1 2 4`` replaces the Ray rows with one per simulated Ray cluster of that many worker nodes
(:func:`rollouts.ray_cluster.simulated_cluster`: ``--cpus-per-node`` CPUs, so workers, each; a head running
none; the project's code shipped as to a real cluster), one cluster after another, each stepping
``--envs-per-worker`` envs per worker with ``--policy controller``, one otherwise. Scaling efficiency is then per
worker, against the row of the fewest nodes. The byte columns count what this driver hands to Ray in one
collection (``ray_traffic.py`` says how): the policy (a world model's V and M) put once whatever the number of
workers, each task's arguments, and the results (the episode files); "stores MiB" is the most the object
stores of all nodes held as episodes came in (the policy pulled once per worker node, beside the driver's copy).

    python benchmarks/collect.py --policy controller --env worldmodels/CarRacingFast-v0 --episodes 16 --steps 300 \\
        --envs-per-worker 4 --nodes 1 2 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray_traffic import KIB, MIB, RayTraffic, counting_ray_traffic, object_store_bytes

from rollouts.collect import DataPolicySpec, EnvSpec, PolicySpec, collect_episodes, run_episodes
from rollouts.ray_cluster import init_ray, simulated_cluster
from worldmodels.checkpoint import ModelWeights, save_untrained_checkpoint
from worldmodels.controller import Controller
from worldmodels.controller_policy import WorldModelPolicySpec
from worldmodels.run_layout import MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME


def plain_loop_fps(env_spec: EnvSpec, policy_spec: DataPolicySpec, episodes: int, envs_per_group: int = 1) -> float:
    """Frames/s of ``episodes`` episodes in this process, ``envs_per_group`` of them at a time in lock-step."""
    torch.set_num_threads(1)  # as in a Ray worker of one CPU
    environments = [env_spec.make() for _ in range(envs_per_group)]
    policy = policy_spec.make_batch(environments[0].action_space, envs_per_group)
    start, frames = time.perf_counter(), 0
    for first in range(0, episodes, envs_per_group):
        seeds = list(range(first, min(first + envs_per_group, episodes)))
        frames += sum(episode.length + 1 for episode in run_episodes(environments, policy, seeds))
    return frames / (time.perf_counter() - start)


def ray_fps(env_spec: EnvSpec, policy_spec: DataPolicySpec, episodes: int, workers: int, envs_per_worker: int = 1,
            on_episode: Callable[[int, list[Any]], None] | None = None) -> float:
    with tempfile.TemporaryDirectory() as out:
        report = collect_episodes(out, env_spec, policy_spec, episodes, num_workers=workers, progress=False,
                                  envs_per_worker=envs_per_worker, on_episode=on_episode)
    return report.frames_per_second


def untrained_world_model(folder: Path) -> WorldModelPolicySpec:
    """Paper-sized V and M, untrained, in ``folder``, and a random C reading [z, h]."""
    save_untrained_checkpoint(folder / VAE_CHECKPOINT_NAME, "vae", {"z_size": 32})
    save_untrained_checkpoint(folder / MDNRNN_CHECKPOINT_NAME, "mdnrnn",
                              {"z_size": 32, "action_size": 3, "hidden_size": 256})
    params = np.random.default_rng(0).normal(0.0, 0.1, Controller(32, 256, 3).num_params)
    return WorldModelPolicySpec(ModelWeights.read(folder / VAE_CHECKPOINT_NAME, "vae"),
                                ModelWeights.read(folder / MDNRNN_CHECKPOINT_NAME, "mdnrnn"), tuple(params.tolist()))


@dataclass
class NodeRow:
    """One simulated cluster's collection: its size, throughput and the bytes handed to Ray."""

    nodes: int
    workers: int
    fps: float
    """Frames/s of the fastest round."""
    per_collection: RayTraffic
    stored_bytes: int
    """The most all the nodes' object stores held while an episode was stored (the policy once per node, and the
    driver's copy)."""


def node_row(env_spec: EnvSpec, policy_spec: DataPolicySpec, episodes: int, nodes: int, cpus_per_node: int,
             envs_per_worker: int, rounds: int) -> NodeRow:
    """``rounds`` collections on a simulated cluster of ``nodes`` worker nodes, one worker per CPU."""
    workers = nodes * cpus_per_node
    stored = [0]

    def sample_stores(index: int, actors: list[Any]) -> None:
        stored[0] = max(stored[0], object_store_bytes())

    with simulated_cluster(nodes, cpus_per_node), counting_ray_traffic() as traffic:
        fps = max(ray_fps(env_spec, policy_spec, episodes, workers, envs_per_worker, sample_stores)
                  for _ in range(rounds))
    return NodeRow(nodes, workers, fps, traffic.per(rounds), stored[0])


def print_node_table(reference: float, rows: list[NodeRow], cpus_per_node: int) -> None:
    """The in-process reference and one row per cluster; efficiency per worker against the first row."""
    first = rows[0]
    print(f"nodes of {cpus_per_node} CPU each, sharing this machine's {os.cpu_count()} cores; "
          f"efficiency per worker against {first.nodes} node(s)")
    print(f"{'run':<24}{'nodes':>6}{'workers':>8}{'frames/s':>10}{'x plain':>9}{'efficiency':>12}{'put MiB':>9}"
          f"{'args KiB':>10}{'results MiB':>13}{'tasks':>7}{'stores MiB':>12}")
    print(f"{'plain loop (reference)':<24}{'':>6}{'':>8}{reference:>10.0f}{1.0:>9.2f}")
    for row in rows:
        efficiency = (row.fps / row.workers) / (first.fps / first.workers)
        per = row.per_collection
        print(f"{f'ray, {row.nodes} node(s)':<24}{row.nodes:>6}{row.workers:>8}{row.fps:>10.0f}"
              f"{row.fps / reference:>9.2f}{efficiency:>12.2f}{per.put_bytes / MIB:>9.1f}"
              f"{per.argument_bytes / KIB:>10.1f}{per.result_bytes / MIB:>13.1f}{per.tasks:>7}"
              f"{row.stored_bytes / MIB:>12.1f}")


def node_table(args: argparse.Namespace) -> None:
    """The in-process reference against one collection per simulated cluster of ``args.nodes`` nodes."""
    env_spec = EnvSpec(args.env, max_episode_steps=args.steps)
    episodes = max(args.episodes, max(args.nodes) * args.cpus_per_node)
    envs_per_worker = args.envs_per_worker if args.policy == "controller" else 1
    with tempfile.TemporaryDirectory() as models:
        policy_spec = untrained_world_model(Path(models)) if args.policy == "controller" else PolicySpec(args.policy)
        reference = max(plain_loop_fps(env_spec, policy_spec, episodes) for _ in range(args.rounds))
        rows = [node_row(env_spec, policy_spec, episodes, nodes, args.cpus_per_node, envs_per_worker, args.rounds)
                for nodes in sorted(args.nodes)]
    print(f"\n{args.env}, policy {args.policy}, {episodes} episodes x {args.steps} steps per row, "
          f"{envs_per_worker} env(s) per worker, fastest of {args.rounds} rounds")
    print_node_table(reference, rows, args.cpus_per_node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="worldmodels/CarRacing-v0", help="registered env id (default: %(default)s)")
    parser.add_argument("--policy", default="random_controller",
                        help="data policy, as collect.policy, or 'controller' (a world model) (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per measurement (per worker count)")
    parser.add_argument("--steps", type=int, default=200, help="steps per episode")
    parser.add_argument("--workers", type=int, default=2, help="N, the larger worker count")
    parser.add_argument("--envs-per-worker", type=int, default=8,
                        help="K, envs per worker in the lock-stepped row (controller only; default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; each row shows its fastest (default: 1)")
    parser.add_argument("--nodes", type=int, nargs="+",
                        help="simulated cluster sizes in worker nodes, e.g. 1 2 4 (replaces the Ray rows)")
    parser.add_argument("--cpus-per-node", type=int, default=1, help="CPUs, so workers, per node (default: 1)")
    args = parser.parse_args()
    if args.nodes:
        node_table(args)
        return

    env_spec = EnvSpec(args.env, max_episode_steps=args.steps)
    episodes = max(args.episodes, args.workers)
    n, k = args.workers, args.envs_per_worker
    plain, one, many = "plain loop (reference)", "ray, 1 worker", f"ray, {n} workers"
    with tempfile.TemporaryDirectory() as models:
        policy_spec = untrained_world_model(Path(models)) if args.policy == "controller" else PolicySpec(args.policy)
        # name: (measure, workers for the efficiency column, the row it is compared with in the last column)
        rows: dict[str, tuple[Callable[[], float], int | None, str | None]] = {
            plain: (lambda: plain_loop_fps(env_spec, policy_spec, args.episodes), None, None),
            one: (lambda: ray_fps(env_spec, policy_spec, episodes, 1), 1, None),
            many: (lambda: ray_fps(env_spec, policy_spec, episodes, n), n, None),
        }
        if args.policy == "controller":
            rows = {plain: rows[plain],
                    f"plain loop, {k} envs lock-stepped": (
                        lambda: plain_loop_fps(env_spec, policy_spec, args.episodes, k), None, plain),
                    one: rows[one], many: rows[many],
                    f"ray, {n} workers x {k} envs, batched": (
                        lambda: ray_fps(env_spec, policy_spec, episodes, n, k), n, many),
                    f"ray, {n} workers, random_controller": (
                        lambda: ray_fps(env_spec, PolicySpec(), episodes, n), None, many)}
        init_ray(num_cpus=n)
        fps = {name: 0.0 for name in rows}
        for _ in range(args.rounds):
            for name, (measure, _, _) in rows.items():
                fps[name] = max(fps[name], measure())
        ray.shutdown()

    print(f"\n{args.env}, policy {args.policy}, {episodes} episodes x {args.steps} steps per row, fastest of "
          f"{args.rounds} rounds")
    print(f"{'run':<38}{'frames/s':>10}{'x plain':>9}{'efficiency':>12}{'x 1 env/worker':>16}")
    for name, (_, workers, versus) in rows.items():
        value = fps[name]
        efficiency = f"{value / (workers * fps[one]):.2f}" if workers else ""
        ratio = f"{value / fps[versus]:.2f}" if versus else ""
        print(f"{name:<38}{value:>10.0f}{value / fps[plain]:>9.2f}{efficiency:>12}{ratio:>16}")


if __name__ == "__main__":
    main()
