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
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import ray
import torch

from rollouts.collect import DataPolicySpec, EnvSpec, PolicySpec, collect_episodes, run_episodes
from rollouts.ray_cluster import init_ray
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


def ray_fps(env_spec: EnvSpec, policy_spec: DataPolicySpec, episodes: int, workers: int, envs_per_worker: int = 1
            ) -> float:
    with tempfile.TemporaryDirectory() as out:
        report = collect_episodes(out, env_spec, policy_spec, episodes, num_workers=workers, progress=False,
                                  envs_per_worker=envs_per_worker)
    return report.frames_per_second


def untrained_world_model(folder: Path) -> WorldModelPolicySpec:
    """Paper-sized V and M, untrained, in ``folder``, and a random C reading [z, h]."""
    save_untrained_checkpoint(folder / VAE_CHECKPOINT_NAME, "vae", {"z_size": 32})
    save_untrained_checkpoint(folder / MDNRNN_CHECKPOINT_NAME, "mdnrnn",
                              {"z_size": 32, "action_size": 3, "hidden_size": 256})
    params = np.random.default_rng(0).normal(0.0, 0.1, Controller(32, 256, 3).num_params)
    return WorldModelPolicySpec(ModelWeights.read(folder / VAE_CHECKPOINT_NAME, "vae"),
                                ModelWeights.read(folder / MDNRNN_CHECKPOINT_NAME, "mdnrnn"), tuple(params.tolist()))


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
    args = parser.parse_args()

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
