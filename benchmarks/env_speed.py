"""Real-environment speed: steps/s of CarRacing-v3 and the faster renderers, and how far their frames are.

    python benchmarks/env_speed.py --seeds 3 --steps 300 --rounds 3
    python benchmarks/env_speed.py --envs worldmodels/CarRacing-v0 worldmodels/CarRacingFast-v0 \
        worldmodels/CarRacingLowRes-v0 --vae runs/tiny/vae.pt

Every env (``gymnasium.make``, wrappers included) plays the same episodes: per seed, a reset then up to
``--steps`` Brownian actions, which ignore the frames, so every env gets the same actions. steps/s is
env.step calls over wall time, resets included; rounds interleave the envs episode by episode, so load on
a shared machine hits them alike, and a row reports its fastest round. The frame difference is the mean
absolute difference per value against the first env's frames (reset frames included, values 0-255), in
a separate untimed pass, "worst frame" its largest value for one frame; "identical" counts the frames
equal to the first env's bit for bit (the first env's own row checks that it replays the same frames).
With ``--vae`` (64x64 envs), each env's frames also get V's reconstruction loss: squared error summed over
a frame's values in [0, 1], decoding the posterior mean, averaged over frames (V's training objective).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import envs  # noqa: F401  (registers the worldmodels/ ids)
from rollouts.policies import BrownianPolicy
from worldmodels.checkpoint import load_vae
from worldmodels.vae import ConvVAE

DEFAULT_ENVS = ["CarRacing-v3", "worldmodels/FastCarRacing-v3", "worldmodels/LowResCarRacing-v3"]


@dataclass
class EnvReport:
    """Measurements of one env id, filled in by :func:`compare_frames` and :func:`time_rounds`."""

    steps_per_second: float = 0.0
    differences: list[float] = field(default_factory=list)
    """Mean absolute difference per value of each frame against the reference env's."""
    reconstruction: list[float] = field(default_factory=list)
    """V's reconstruction loss of each frame (with --vae)."""


@torch.no_grad()
def reconstruction_loss(vae: ConvVAE, frames: list[np.ndarray]) -> list[float]:
    """V's summed squared reconstruction error (posterior mean decoded) of each frame (64, 64, 3) uint8."""
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255  # (N, 3, 64, 64)
    mu, _ = vae.encode(x)
    return (vae.decode(mu) - x).square().sum(dim=(1, 2, 3)).tolist()


def episode_actions(space: gym.Space, seed: int, steps: int) -> list[np.ndarray]:
    policy = BrownianPolicy(space, sigma=0.1)
    policy.reset(np.random.default_rng(seed))
    return [policy(np.empty(0)) for _ in range(steps)]


def play(env: gym.Env, seed: int, actions: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames of one episode: the reset frame, then one per action until the episode ends."""
    frame, _ = env.reset(seed=seed)
    yield frame
    for action in actions:
        frame, _, terminated, truncated, _ = env.step(action)
        yield frame
        if terminated or truncated:
            return


def compare_frames(envs_by_id: dict[str, gym.Env], episodes: dict[int, list[np.ndarray]],
                   reports: dict[str, EnvReport], vae: ConvVAE | None = None) -> None:
    """Play every episode on every env; record each frame's difference to the first env's frame (and V's
    reconstruction loss of it, with a ``vae``)."""
    reference_id, *_ = envs_by_id
    for seed, actions in episodes.items():
        reference = [frame.astype(np.int16) for frame in play(envs_by_id[reference_id], seed, actions)]
        for env_id, env in envs_by_id.items():
            frames = list(play(env, seed, actions))
            if len(frames) != len(reference):
                raise RuntimeError(f"{env_id} ended seed {seed} after {len(frames)} frames, "
                                   f"{reference_id} after {len(reference)}: the physics differ")
            reports[env_id].differences += [float(np.abs(a - b).mean()) for a, b in zip(reference, frames)]
            if vae is not None:
                reports[env_id].reconstruction += reconstruction_loss(vae, frames)


def time_rounds(envs_by_id: dict[str, gym.Env], episodes: dict[int, list[np.ndarray]],
                reports: dict[str, EnvReport], rounds: int) -> None:
    """Time every env on every episode, interleaved; keep each env's fastest round."""
    for _ in range(rounds):
        seconds, steps = dict.fromkeys(envs_by_id, 0.0), dict.fromkeys(envs_by_id, 0)
        for seed, actions in episodes.items():
            for env_id, env in envs_by_id.items():
                start = time.perf_counter()
                steps[env_id] += sum(1 for _ in play(env, seed, actions)) - 1
                seconds[env_id] += time.perf_counter() - start
        for env_id, report in reports.items():
            report.steps_per_second = max(report.steps_per_second, steps[env_id] / seconds[env_id])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS, help="ids; the first is the reference")
    parser.add_argument("--seeds", type=int, default=3, help="episodes per round, seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=300, help="steps per episode")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the fastest counts")
    parser.add_argument("--vae", type=Path, help="a trained V checkpoint: also report its reconstruction loss")
    args = parser.parse_args()
    vae = load_vae(args.vae).eval() if args.vae else None

    envs_by_id = {env_id: gym.make(env_id) for env_id in args.envs}
    space = envs_by_id[args.envs[0]].action_space
    episodes = {seed: episode_actions(space, seed, args.steps) for seed in range(args.seeds)}
    reports = {env_id: EnvReport() for env_id in args.envs}
    compare_frames(envs_by_id, episodes, reports, vae)
    time_rounds(envs_by_id, episodes, reports, args.rounds)

    reference = reports[args.envs[0]].steps_per_second
    print(f"\n{args.seeds} seeds x {args.steps} steps, Brownian actions, fastest of {args.rounds} rounds")
    print(f"{'env':<34}{'steps/s':>9}{'x ref':>8}{'mean |diff|':>13}{'worst frame':>13}{'identical':>13}"
          + (f"{'V loss (SSE)':>16}" if vae else ""))
    for env_id, report in reports.items():
        differences = np.array(report.differences)
        identical = f"{np.sum(differences == 0)}/{len(differences)}"
        loss = f"{np.mean(report.reconstruction):>9.2f} +- {np.std(report.reconstruction):<4.1f}" if vae else ""
        print(f"{env_id:<34}{report.steps_per_second:>9.0f}{report.steps_per_second / reference:>8.2f}"
              f"{differences.mean():>13.3f}{differences.max():>13.3f}{identical:>13}{loss}")


if __name__ == "__main__":
    main()
