"""Rollout collection throughput: frames/s for one Ray worker and for N, against a plain loop.

    python benchmarks/collect.py --episodes 4 --steps 200 --workers 2

The reference is the same episodes stepped in this process without Ray (``run_episode`` in a loop);
scaling efficiency = frames/s with N workers / (N x frames/s with 1 worker).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray

from rollouts.collect import EnvSpec, PolicySpec, collect_episodes, run_episode
from rollouts.ray_cluster import init_ray


def plain_loop_fps(env_spec: EnvSpec, policy_spec: PolicySpec, episodes: int) -> float:
    env = env_spec.make()
    policy = policy_spec.make(env.action_space)
    start, frames = time.perf_counter(), 0
    for seed in range(episodes):
        frames += run_episode(env, policy, seed).length + 1
    return frames / (time.perf_counter() - start)


def ray_fps(env_spec: EnvSpec, policy_spec: PolicySpec, episodes: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        report = collect_episodes(out, env_spec, policy_spec, episodes, num_workers=workers, progress=False)
    return report.frames_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="worldmodels/CarRacing-v0", help="registered env id (default: %(default)s)")
    parser.add_argument("--policy", default="random_controller",
                        help="data policy, as collect.policy (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per measurement (per worker count)")
    parser.add_argument("--steps", type=int, default=200, help="steps per episode")
    parser.add_argument("--workers", type=int, default=2, help="N, the larger worker count")
    args = parser.parse_args()

    env_spec, policy_spec = EnvSpec(args.env, max_episode_steps=args.steps), PolicySpec(args.policy)
    init_ray(num_cpus=args.workers)
    episodes = max(args.episodes, args.workers)
    reference = plain_loop_fps(env_spec, policy_spec, args.episodes)
    one = ray_fps(env_spec, policy_spec, episodes, 1)
    many = ray_fps(env_spec, policy_spec, episodes, args.workers)
    ray.shutdown()

    print(f"\n{args.env}, policy {args.policy}, {episodes} episodes x {args.steps} steps per row")
    print(f"{'run':<28}{'frames/s':>10}{'x plain':>9}{'efficiency':>12}")
    print(f"{'plain loop (reference)':<28}{reference:>10.0f}{1.0:>9.2f}{'':>12}")
    print(f"{'ray, 1 worker':<28}{one:>10.0f}{one / reference:>9.2f}{1.0:>12.2f}")
    print(f"{f'ray, {args.workers} workers':<28}{many:>10.0f}{many / reference:>9.2f}"
          f"{many / (args.workers * one):>12.2f}")


if __name__ == "__main__":
    main()
