"""One real-env worker's rollout steps/s against the number of envs it steps in lock-step (``cmaes.envs_per_worker``).

    python benchmarks/lockstep_width.py --env worldmodels/CarRacingLowRes-v0 --widths 1 4 8 16 32
    python benchmarks/lockstep_width.py --pretrained doom --widths 1 4 16
    python benchmarks/lockstep_width.py --env worldmodels/CarRacingFast-v0 --episodes 16 --widths 1 16

One process on one torch thread, as a Ray worker of one CPU, runs the same episodes at every width: a shipped agent's
V and M (``--pretrained``, default ``carracing``) in its env (``--env`` replaces it), and as controllers the agent's
mean with N(0, ``--sigma``) added to each episode's row, as a CMA-ES population around it (sigma 0.05 by default,
where the shipped CarRacing search ended). The reference is width 1, the public implementations' layout: one V+M per
env stepping at batch 1. At width K one V+M steps K envs, V encodes their frames in one batch and M advances them in
one batch; an env whose episode ends starts the next waiting one. "model MB per env" is the float32 size of V and M
over the envs sharing them. The returns are checked to be the same at every width (an episode's return does not
depend on batching).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from worldmodels.checkpoint import load_mdnrnn, load_vae
from worldmodels.config import load_config
from worldmodels.controller import load_params
from worldmodels.pretrained import unpack_agent
from worldmodels.real_rollouts import RealEnvWorker, RealEnvWorkerSpec
from worldmodels.run_layout import CONFIG_NAME, CONTROLLER_DIR, MEAN_PARAMS_NAME


@dataclass(frozen=True)
class WidthRow:
    """One width's run of the episodes."""

    width: int
    seconds: float
    env_steps: int
    returns: np.ndarray
    """(N,) float64, one per episode."""

    @property
    def steps_per_s(self) -> float:
        return self.env_steps / self.seconds


def run_width(spec: RealEnvWorkerSpec, width: int, params: np.ndarray, seeds: np.ndarray) -> WidthRow:
    """The episodes of params (N, D) from seeds (N,) on one worker of ``width`` envs, warmed by one episode first."""
    worker: RealEnvWorker = replace(spec, num_envs=width)()
    worker.run(params[:1], seeds[:1])
    before = worker.env_steps
    start = time.perf_counter()
    returns = worker.run(params, seeds)
    seconds = time.perf_counter() - start
    worker.close()
    return WidthRow(width, seconds, worker.env_steps - before, returns)


def model_mb(spec: RealEnvWorkerSpec) -> float:
    """The float32 size of V's and M's weights, in MB (2**20 bytes)."""
    return sum(p.numel() * 4 for model in (load_vae(spec.vae), load_mdnrnn(spec.mdnrnn))
               for p in model.parameters()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", default="carracing", help="a shipped agent's name or an agent file "
                        "(default: %(default)s)")
    parser.add_argument("--env", help="the env id (default: the agent's own, env.id of its config)")
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4, 8, 16, 32],
                        help="envs per worker to time; 1 is the reference (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=32, help="episodes per width (default: %(default)s)")
    parser.add_argument("--steps", type=int,
                        help="steps per episode at most (default: the agent's env.max_episode_steps)")
    parser.add_argument("--sigma", type=float, default=0.05,
                        help="std of the noise added to the agent's controller per episode (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed; also seeds the noise (default: 0)")
    args = parser.parse_args()

    folder = unpack_agent(args.pretrained)
    overrides = [f"env.id={args.env}"] if args.env else []
    overrides += [f"env.max_episode_steps={args.steps}"] if args.steps else []
    config = load_config(file=Path(folder) / CONFIG_NAME, overrides=overrides)
    spec = RealEnvWorkerSpec.for_run(config, Path(folder))
    mean = load_params(Path(folder) / CONTROLLER_DIR / MEAN_PARAMS_NAME, spec.num_params)
    rng = np.random.default_rng(args.seed)
    params = (mean + rng.normal(0.0, args.sigma, (args.episodes, mean.size))).astype(np.float32)  # (N, D)
    seeds = np.arange(args.seed, args.seed + args.episodes)
    torch.set_num_threads(1)  # as in a Ray worker of one CPU

    rows = [run_width(spec, width, params, seeds) for width in sorted({1, *args.widths})]
    reference, size = rows[0], model_mb(spec)
    lengths = reference.env_steps / args.episodes
    cap = f", at most {config.env.max_episode_steps}" if config.env.max_episode_steps else ""
    print(f"\n{config.env.id}, agent {args.pretrained}: {args.episodes} episodes of {lengths:.0f} steps on average"
          f"{cap}, controller noise {args.sigma}, one torch thread")
    print(f"{'envs per worker':<38}{'s':>8}{'env steps/s':>13}{'x':>7}{'model MB per env':>18}")
    for row in rows:
        name = "1, one V+M per env (reference)" if row.width == 1 else f"{row.width}, one V+M for all, batched"
        print(f"{name:<38}{row.seconds:>8.1f}{row.steps_per_s:>13.1f}{row.steps_per_s / reference.steps_per_s:>7.2f}"
              f"{size / row.width:>18.1f}")
    same = all(np.array_equal(row.returns, reference.returns) for row in rows)
    print(f"returns the same at every width: {'yes' if same else 'NO'}; mean return {reference.returns.mean():.1f}")


if __name__ == "__main__":
    main()
