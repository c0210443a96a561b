"""CMA-ES generation time in the real env: seconds per generation with 1 Ray worker and with N (one worker's steps/s
against its envs per worker: ``lockstep_width.py``).

    python benchmarks/es_scaling.py --popsize 4 --rollouts 2 --steps 100 --workers 2 --envs-per-worker 2
    python benchmarks/es_scaling.py --popsize 8 --rollouts 2 --steps 100 --envs-per-worker 2 --nodes 1 2 4

Candidates are evaluated by the real-env worker (paper-sized V and M, untrained: the cost of a rollout
does not depend on the weights) in CarRacing episodes capped at ``--steps``. The reference is the same
generation in this process without Ray, on one torch thread as in a Ray worker, its worker warmed by one
rollout first as each Ray worker is (with torch's own threads it swung 8x with the machine's load).
Scaling efficiency = time with 1 worker / (N x time with N).

``--nodes 1 2 4`` runs the generation instead on simulated Ray clusters of that many worker nodes
(:func:`rollouts.ray_cluster.simulated_cluster`: ``--cpus-per-node`` CPUs, so workers, each; a head running
none; the project's code shipped as to a real cluster), one cluster after another. Scaling efficiency is then
per worker, against the row of the fewest nodes. The byte columns count what this driver hands to Ray
(``ray_traffic.py`` says how): once, as the workers start (V and M, put once whatever the number of workers),
and per generation (the candidates, put once, and each task's arguments and results); "stores MiB" is what
the object stores of all nodes hold at the end (V and M pulled once per worker node, beside the driver's copy).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
import torch
from ray_traffic import KIB, MIB, RayTraffic, counting_ray_traffic, object_store_bytes

from agents.cmaes import generation_seeds
from agents.evaluators import Evaluator, RayEvaluator, SerialEvaluator
from rollouts.collect import EnvSpec
from rollouts.ray_cluster import init_ray, simulated_cluster
from worldmodels.checkpoint import ModelWeights, save_untrained_checkpoint
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME


def seconds_per_generation(evaluator: Evaluator, popsize: int, rollouts: int, num_params: int) -> float:
    """Wall time of one generation's evaluation (popsize x rollouts episodes)."""
    candidates = np.random.default_rng(0).normal(0, 0.1, (popsize, num_params)).astype(np.float32)
    start = time.perf_counter()
    evaluator(candidates, generation_seeds(0, 0, rollouts))
    return time.perf_counter() - start


def paper_sized_worker(run: Path, steps: int, envs_per_worker: int) -> RealEnvWorkerSpec:
    """The real-env worker of untrained paper-sized V and M, written to and read from ``run``."""
    save_untrained_checkpoint(run / VAE_CHECKPOINT_NAME, "vae", {"z_size": 32})
    save_untrained_checkpoint(run / MDNRNN_CHECKPOINT_NAME, "mdnrnn", {"z_size": 32, "action_size": 3})
    return RealEnvWorkerSpec(EnvSpec("worldmodels/CarRacing-v0", steps),
                             ModelWeights.read(run / VAE_CHECKPOINT_NAME, "vae"),
                             ModelWeights.read(run / MDNRNN_CHECKPOINT_NAME, "mdnrnn"), num_envs=envs_per_worker)


@dataclass
class NodeRow:
    """One simulated cluster's generation: its size, time and the bytes handed to Ray."""

    nodes: int
    workers: int
    seconds: float
    """Mean wall time of a generation."""
    once: RayTraffic
    """Starting the workers (the worker factory with V and M, put once)."""
    per_generation: RayTraffic
    stored_bytes: int
    """What all the nodes' object stores hold after the generations (V and M once per node, and the driver's)."""


def node_row(spec: RealEnvWorkerSpec, nodes: int, cpus_per_node: int, popsize: int, rollouts: int,
             generations: int) -> NodeRow:
    """Generations on a simulated cluster of ``nodes`` worker nodes, one worker per CPU, every worker built and
    warm (one rollout each) before the clock starts."""
    workers = nodes * cpus_per_node
    with simulated_cluster(nodes, cpus_per_node), counting_ray_traffic() as traffic:
        evaluator = RayEvaluator(spec, workers)
        ray.get([actor.__ray_ready__.remote() for actor in evaluator.pool.actors])
        once = dataclasses.replace(traffic)
        seconds_per_generation(evaluator, workers, 1, spec.num_params)
        before = dataclasses.replace(traffic)
        seconds = sum(seconds_per_generation(evaluator, popsize, rollouts, spec.num_params)
                      for _ in range(generations)) / generations
        stored = object_store_bytes()
        evaluator.close()
    return NodeRow(nodes, workers, seconds, once, (traffic - before).per(generations), stored)


def print_node_table(reference: float, rows: list[NodeRow], cpus_per_node: int) -> None:
    """The in-process reference and one row per cluster; efficiency per worker against the first row."""
    first = rows[0]
    print(f"nodes of {cpus_per_node} CPU each, sharing this machine's {os.cpu_count()} cores; "
          f"efficiency per worker against {first.nodes} node(s)")
    print(f"{'run':<24}{'nodes':>6}{'workers':>8}{'s/generation':>14}{'x plain':>9}{'efficiency':>12}"
          f"{'put once MiB':>14}{'put/gen KiB':>13}{'args/gen KiB':>14}{'results/gen KiB':>17}{'tasks/gen':>11}"
          f"{'stores MiB':>12}")
    print(f"{'plain loop (reference)':<24}{'':>6}{'':>8}{reference:>14.2f}{1.0:>9.2f}")
    for row in rows:
        efficiency = first.seconds * first.workers / (row.seconds * row.workers)
        per = row.per_generation
        print(f"{f'ray, {row.nodes} node(s)':<24}{row.nodes:>6}{row.workers:>8}{row.seconds:>14.2f}"
              f"{reference / row.seconds:>9.2f}{efficiency:>12.2f}{row.once.put_bytes / MIB:>14.1f}"
              f"{per.put_bytes / KIB:>13.1f}{per.argument_bytes / KIB:>14.1f}{per.result_bytes / KIB:>17.1f}"
              f"{per.tasks:>11}{row.stored_bytes / MIB:>12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--popsize", type=int, default=4, help="CMA-ES population (default: %(default)s)")
    parser.add_argument("--rollouts", type=int, default=2, help="episodes per candidate (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--workers", type=int, default=2, help="N, the larger worker count (without --nodes)")
    parser.add_argument("--envs-per-worker", type=int, default=2,
                        help="envs each worker steps in lock-step with one V+M (default: %(default)s)")
    parser.add_argument("--nodes", type=int, nargs="+",
                        help="simulated cluster sizes in worker nodes, e.g. 1 2 4 (replaces the local Ray rows)")
    parser.add_argument("--cpus-per-node", type=int, default=1, help="CPUs, so workers, per node (default: 1)")
    parser.add_argument("--generations", type=int, default=1,
                        help="timed generations per cluster, averaged (with --nodes; default: 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        spec = paper_sized_worker(Path(folder), args.steps, args.envs_per_worker)
        torch.set_num_threads(1)  # as in a Ray worker of one CPU
        serial = SerialEvaluator(spec)
        num_params = serial.worker.num_params
        seconds_per_generation(serial, 1, 1, num_params)  # warm, as the Ray workers are before their rows
        reference = seconds_per_generation(serial, args.popsize, args.rollouts, num_params)
        episodes = args.popsize * args.rollouts
        print(f"\n{episodes} episodes x {args.steps} steps per generation (popsize {args.popsize}, "
              f"{args.rollouts} rollouts), {args.envs_per_worker} envs per worker")
        if args.nodes:
            rows = [node_row(spec, nodes, args.cpus_per_node, args.popsize, args.rollouts, args.generations)
                    for nodes in sorted(args.nodes)]
            print_node_table(reference, rows, args.cpus_per_node)
            return
        init_ray(num_cpus=args.workers)
        times = {}
        for workers in (1, args.workers):
            evaluator = RayEvaluator(spec, workers)
            seconds_per_generation(evaluator, 1, 1, num_params)  # actors built and warm
            times[workers] = seconds_per_generation(evaluator, args.popsize, args.rollouts, num_params)
            evaluator.close()
        ray.shutdown()

    print(f"{'run':<28}{'s/generation':>14}{'x plain':>9}{'efficiency':>12}")
    print(f"{'plain loop (reference)':<28}{reference:>14.2f}{1.0:>9.2f}{'':>12}")
    for workers, seconds in times.items():
        efficiency = times[1] / (workers * seconds)
        print(f"{f'ray, {workers} worker(s)':<28}{seconds:>14.2f}{reference / seconds:>9.2f}{efficiency:>12.2f}")


if __name__ == "__main__":
    main()
