"""CMA-ES generation time in the real env: seconds per generation with 1 Ray worker and with N, and one
worker's rollout steps/s with V+M batched over its lock-stepped envs against one model per environment.

    python benchmarks/es_scaling.py --popsize 4 --rollouts 2 --steps 100 --workers 2 --envs-per-worker 2

Candidates are evaluated by the real-env worker (paper-sized V and M, untrained: the cost of a rollout
does not depend on the weights) in CarRacing episodes capped at ``--steps``. The reference is the same
generation in this process without Ray. Scaling efficiency = time with 1 worker / (N x time with N).

The second table runs the same episodes in this process: K envs lock-stepped with V and M batched over
them, against the public implementations' layout of one V+M per environment stepping at batch 1 (here:
K = 1 env per worker, run K times). "model MB per env" is the float32 size of the V+M weights each
environment needs a copy of.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import ray

from agents.cmaes import generation_seeds
from agents.evaluators import Evaluator, RayEvaluator, SerialEvaluator
from rollouts.collect import EnvSpec
from rollouts.ray_cluster import init_ray
from worldmodels.checkpoint import ModelWeights, save_untrained_checkpoint
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME


def seconds_per_generation(evaluator: Evaluator, popsize: int, rollouts: int, num_params: int) -> float:
    """Wall time of one generation's evaluation (popsize x rollouts episodes)."""
    candidates = np.random.default_rng(0).normal(0, 0.1, (popsize, num_params)).astype(np.float32)
    start = time.perf_counter()
    evaluator(candidates, generation_seeds(0, 0, rollouts))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--popsize", type=int, default=4, help="CMA-ES population (default: %(default)s)")
    parser.add_argument("--rollouts", type=int, default=2, help="episodes per candidate (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--workers", type=int, default=2, help="N, the larger worker count")
    parser.add_argument("--envs-per-worker", type=int, default=2,
                        help="envs each worker steps in lock-step with one V+M (default: %(default)s)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder)
        save_untrained_checkpoint(run / VAE_CHECKPOINT_NAME, "vae", {"z_size": 32})
        save_untrained_checkpoint(run / MDNRNN_CHECKPOINT_NAME, "mdnrnn", {"z_size": 32, "action_size": 3})
        spec = RealEnvWorkerSpec(EnvSpec("worldmodels/CarRacing-v0", args.steps),
                                 ModelWeights.read(run / VAE_CHECKPOINT_NAME, "vae"),
                                 ModelWeights.read(run / MDNRNN_CHECKPOINT_NAME, "mdnrnn"),
                                 num_envs=args.envs_per_worker)
        serial = SerialEvaluator(spec)
        num_params = serial.worker.num_params
        reference = seconds_per_generation(serial, args.popsize, args.rollouts, num_params)
        batched_steps_per_s = serial.worker.env_steps / reference
        single = SerialEvaluator(replace(spec, num_envs=1))
        single_seconds = seconds_per_generation(single, args.popsize, args.rollouts, num_params)
        single_steps_per_s = single.worker.env_steps / single_seconds
        model_mb = sum(p.numel() * 4 for model in (serial.worker.vae, serial.worker.mdnrnn)
                       for p in model.parameters()) / 2**20
        init_ray(num_cpus=args.workers)
        times = {}
        for workers in (1, args.workers):
            evaluator = RayEvaluator(spec, workers)
            seconds_per_generation(evaluator, 1, 1, num_params)  # actors built and warm
            times[workers] = seconds_per_generation(evaluator, args.popsize, args.rollouts, num_params)
            evaluator.close()
        ray.shutdown()

    episodes = args.popsize * args.rollouts
    print(f"\n{episodes} episodes x {args.steps} steps per generation (popsize {args.popsize}, "
          f"{args.rollouts} rollouts), {args.envs_per_worker} envs per worker")
    print(f"{'run':<28}{'s/generation':>14}{'x plain':>9}{'efficiency':>12}")
    print(f"{'plain loop (reference)':<28}{reference:>14.2f}{1.0:>9.2f}{'':>12}")
    for workers, seconds in times.items():
        efficiency = times[1] / (workers * seconds)
        print(f"{f'ray, {workers} worker(s)':<28}{seconds:>14.2f}{reference / seconds:>9.2f}{efficiency:>12.2f}")
    k = args.envs_per_worker
    print(f"\n{'one worker':<40}{'env steps/s':>12}{'x':>7}{'model MB per env':>18}")
    print(f"{'one V+M per env, batch 1 (reference)':<40}{single_steps_per_s:>12.1f}{1.0:>7.2f}{model_mb:>18.1f}")
    print(f"{f'one V+M for {k} envs, batched':<40}{batched_steps_per_s:>12.1f}"
          f"{batched_steps_per_s / single_steps_per_s:>7.2f}{model_mb / k:>18.1f}")


if __name__ == "__main__":
    main()
