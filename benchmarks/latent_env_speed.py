"""Speed of the SB3 latent env: env steps/s of B envs seen through V and M, batched against one wrapper per env.

    python benchmarks/latent_env_speed.py --envs 8 --steps 200

Untrained, paper-sized V and M (z 32, LSTM 256, [z, h] observations), uniform random actions, SB3's DummyVecEnv
of B envs stepped ``--steps`` times per round. Rows: the frame envs alone (no model: what the env allows), one
``LatentObservation`` per env (V and M at batch 1, the layout before batching: the reference) and one
``LatentVecEnv`` over all B envs (one V call and one M step per step for the batch, as ``worldmodels baseline
--obs latent`` trains). Each row is the fastest of ``--rounds`` rounds, the rows of a round measured one after
another. On a machine shared with other jobs torch's threads wait for each other at every call; ``--threads
1`` measures without that.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

import envs  # noqa: F401  (registers the worldmodels/ ids)
from agents.sb3_latent import LatentObservation, LatentVecEnv
from worldmodels.checkpoint import load_mdnrnn, load_vae, save_untrained_checkpoint
from worldmodels.run_layout import MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME


def steps_per_second(make: Callable[[], VecEnv], steps: int) -> float:
    """Env steps/s (B per VecEnv step) of ``steps`` VecEnv steps with uniform random actions."""
    venv = make()
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    low, high = venv.action_space.low, venv.action_space.high
    actions = rng.uniform(low, high, (steps, venv.num_envs, *venv.action_space.shape)).astype(np.float32)
    start = time.perf_counter()
    for step in range(steps):
        venv.step(actions[step])
    seconds = time.perf_counter() - start
    venv.close()
    return steps * venv.num_envs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="worldmodels/CarRacingFast-v0", help="registered env id (default: %(default)s)")
    parser.add_argument("--envs", type=int, default=8, help="B, envs stepped together (baseline.n_envs; default 8)")
    parser.add_argument("--steps", type=int, default=200, help="VecEnv steps per round (default: %(default)s)")
    parser.add_argument("--episode-steps", type=int, default=1000, help="episode cap (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each row shows its fastest (default: 2)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default 0: torch's own, one per core, as a baseline run uses)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        save_untrained_checkpoint(Path(folder) / VAE_CHECKPOINT_NAME, "vae", {"z_size": 32})
        save_untrained_checkpoint(Path(folder) / MDNRNN_CHECKPOINT_NAME, "mdnrnn",
                                  {"z_size": 32, "action_size": 3, "hidden_size": 256})
        vae, mdnrnn = load_vae(Path(folder) / VAE_CHECKPOINT_NAME), load_mdnrnn(Path(folder) / MDNRNN_CHECKPOINT_NAME)

    def frame_env() -> gym.Env:
        return gym.make(args.env, max_episode_steps=args.episode_steps)

    rows: dict[str, Callable[[], VecEnv]] = {
        "frame envs, no model": lambda: make_vec_env(frame_env, args.envs),
        "LatentObservation per env (reference)": lambda: make_vec_env(
            lambda: LatentObservation(frame_env(), vae, mdnrnn), args.envs),
        "LatentVecEnv, batched": lambda: LatentVecEnv(make_vec_env(frame_env, args.envs), vae, mdnrnn),
    }
    speed = {name: 0.0 for name in rows}
    for _ in range(args.rounds):
        for name, make in rows.items():
            speed[name] = max(speed[name], steps_per_second(make, args.steps))

    reference = speed["LatentObservation per env (reference)"]
    print(f"\n{args.env}, {args.envs} envs x {args.steps} steps per round, fastest of {args.rounds} rounds, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'run':<40}{'env steps/s':>13}{'x reference':>13}")
    for name, value in speed.items():
        print(f"{name:<40}{value:>13.0f}{value / reference:>13.2f}")


if __name__ == "__main__":
    main()
