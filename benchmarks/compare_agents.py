"""Agents at one budget of steps, each scored in the real env the same way: CMA-ES in the dream, CMA-ES in the real
env, and an SB3 algorithm (PPO by default) on pixels, on V and M's latents and in the dream.

    python benchmarks/compare_agents.py --run runs/tiny --preset carracing-tiny --budget 2000 --episodes 10 \\
        --set env.id=worldmodels/CarRacingFast-v0 --set dream.max_steps=100 --set baseline.n_envs=2 \\
        --set "baseline.algo_kwargs={n_steps: 250, batch_size: 50}"

RUN holds V (vae.pt), M with a reward head (mdnrnn.pt, ``--set mdnrnn.reward_head=true`` when training it: the
dream's reward) and the encoded episodes whose first frames start the dreams (RUN/episodes, or --data).

The budget: the real-env methods get ``--budget`` real-env steps of training, the dream methods as many dream steps
and no real ones; every world-model method also stands on the real steps of the episodes V and M learnt from
(stated under the table). CMA-ES-real runs generations until its rollouts have taken the budget (the generation
that crosses it is finished; its mean-solution evaluations are turned off, as they would spend real steps the
others do not get). CMA-ES-dream runs budget // (popsize * rollouts * dream.max_steps) generations, at least one.
The SB3 agents run the budget rounded up to whole rollouts (n_steps * n_envs for PPO).

Every agent is then run on ``--episodes`` real episodes (default evaluate.episodes) with seeds evaluate.seed + i.
Outputs in OUT (default RUN/comparison): comparison.md (the table), learning_curves.png (training return against
training steps), and the agents: cmaes_real/ and cmaes_dream/ (run folders whose controller/ holds the CMA-ES
state; emptied first), {algo}_{obs}.zip and .json.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from agents.dream_training import train_controller_dream
from agents.evaluation import EvaluationReport
from agents.real_env import evaluate_controller_real, train_controller_real
from agents.sb3 import algorithm_class, run_baseline
from rollouts.atomic import atomic_write_text
from rollouts.storage import episode_lengths, list_episode_files
from worldmodels.commands import add_config_options, add_ray_address_option, config_from_args, start_ray
from worldmodels.config_schema import Config
from worldmodels.dream import dream_max_steps
from worldmodels.pictures import Series, plot_series
from worldmodels.run_layout import EPISODES_DIR, MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME

METHODS = ("cmaes-dream", "cmaes-real", "sb3-pixels", "sb3-latent", "sb3-dream")
NEVER = 2**62
"""An ``eval_every`` no generation reaches: the CMA-ES runs here skip their mean-solution evaluations."""


@dataclass
class MethodResult:
    """One row of the comparison."""

    name: str
    trained_in: str
    """"real" or "dream": where the training steps were taken."""
    steps: int
    """Training steps, in ``trained_in``."""
    seconds: float
    """Training wall time."""
    curve: list[tuple[int, float]]
    """(training steps so far, training return): CMA-ES's mean fitness per generation, the SB3 training episodes."""
    report: EvaluationReport
    """The real-env evaluation."""


def cmaes_folder(run: Path, folder: Path) -> Path:
    """An empty run folder for one CMA-ES method, its V and M linked from ``run``."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in (VAE_CHECKPOINT_NAME, MDNRNN_CHECKPOINT_NAME):
        (folder / name).symlink_to((run / name).resolve())
    return folder


def with_generations(config: Config, generations: int) -> Config:
    return replace(config, cmaes=replace(config.cmaes, generations=generations, eval_every=NEVER))


def cmaes_real(config: Config, run: Path, data: Path, out: Path, budget: int, episodes: int) -> MethodResult:
    """CMA-ES in the real env, one generation at a time until its rollouts have taken ``budget`` steps."""
    folder = cmaes_folder(run, out / "cmaes_real")
    steps, curve, start = 0, [], time.perf_counter()
    while steps < budget:
        for record in train_controller_real(with_generations(config, len(curve) + 1), folder):
            if record.env_steps < 1:
                raise RuntimeError(f"generation {record.generation} took no real-env steps")
            steps += record.env_steps
            curve.append((steps, record.mean_fitness))
    seconds = time.perf_counter() - start
    return MethodResult("CMA-ES real", "real", steps, seconds, curve, evaluate_controller_real(config, folder, episodes))


def cmaes_dream(config: Config, run: Path, data: Path, out: Path, budget: int, episodes: int) -> MethodResult:
    """CMA-ES in the dream for as many generations of popsize * rollouts * dream.max_steps steps as fit the budget."""
    folder = cmaes_folder(run, out / "cmaes_dream")
    per_generation = config.cmaes.popsize * config.cmaes.rollouts * dream_max_steps(config)
    generations = max(1, budget // per_generation)
    start = time.perf_counter()
    records = train_controller_dream(with_generations(config, generations), folder, data)
    seconds = time.perf_counter() - start
    curve = [(per_generation * (r.generation + 1), r.mean_fitness) for r in records]
    return MethodResult("CMA-ES dream", "dream", per_generation * generations, seconds, curve,
                        evaluate_controller_real(config, folder, episodes))


def sb3_method(obs: str) -> Callable[[Config, Path, Path, Path, int, int], MethodResult]:
    """The comparison method of ``baseline.algo`` on ``obs``."""

    def method(config: Config, run: Path, data: Path, out: Path, budget: int, episodes: int) -> MethodResult:
        settings = replace(config.baseline, obs=obs, timesteps=budget)
        result = run_baseline(replace(config, baseline=settings), run, data, out, episodes)
        agent = result.agent
        return MethodResult(f"{algorithm_class(settings.algo).__name__} {obs}", "dream" if obs == "dream" else "real",
                            agent.model.num_timesteps, agent.seconds, agent.curve, result.report)

    return method


RUNNERS: dict[str, Callable[[Config, Path, Path, Path, int, int], MethodResult]] = {
    "cmaes-dream": cmaes_dream,
    "cmaes-real": cmaes_real,
    "sb3-pixels": sb3_method("pixels"),
    "sb3-latent": sb3_method("latent"),
    "sb3-dream": sb3_method("dream"),
}


def markdown_table(results: list[MethodResult], budget: int, data_steps: int) -> str:
    """The comparison as Markdown: a row per method, then what the budget and the returns mean."""
    episodes = {r.report.episodes for r in results}
    lines = ["| method | real-env steps (training) | dream steps | real-env return, mean +- std | training s |",
             "|---|---|---|---|---|"]
    for r in results:
        real, dream = (r.steps, 0) if r.trained_in == "real" else (0, r.steps)
        lines.append(f"| {r.name} | {real:,} | {dream:,} | {r.report.mean:.1f} +- {r.report.std:.1f} | "
                     f"{r.seconds:.0f} |")
    note = (f"Budget {budget:,} steps per method; returns over {', '.join(map(str, sorted(episodes)))} real "
            f"episodes on distinct seeds, deterministic actions. The world-model methods (all but pixels) also "
            f"stand on the {data_steps:,} real steps of the episodes V and M were trained on.")
    return "\n".join([*lines, "", note]) + "\n"


def curves(results: list[MethodResult]) -> dict[str, Series]:
    """Each method's training returns against its training steps (real or dream, as the label says)."""
    return {f"{r.name} ({r.trained_in} steps)": Series(*np.array(r.curve, np.float64).T) for r in results if r.curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_options(parser)
    add_ray_address_option(parser)
    parser.add_argument("--run", required=True, type=Path, help="run folder holding vae.pt and mdnrnn.pt")
    parser.add_argument("--data", type=Path, help=f"encoded episodes starting the dreams (default: RUN/{EPISODES_DIR})")
    parser.add_argument("--budget", type=int, default=2000, help="training steps per method")
    parser.add_argument("--episodes", type=int, help="real-env evaluation episodes (default: evaluate.episodes)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="methods to train and score (default: all)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN/comparison)")
    args = parser.parse_args()
    config = config_from_args(args)
    data = args.data or args.run / EPISODES_DIR
    out = args.out or args.run / "comparison"
    episodes = args.episodes or config.evaluate.episodes
    start_ray(args, config)
    results = []
    for name in args.methods:
        result = RUNNERS[name](config, args.run, data, out, args.budget, episodes)
        print(f"{result.name}: {result.steps} {result.trained_in} steps in {result.seconds:.0f} s; real env "
              f"{result.report.summary()}", flush=True)
        results.append(result)
    table = markdown_table(results, args.budget, sum(episode_lengths(list_episode_files(data))))
    atomic_write_text(out / "comparison.md", table)
    plot_series(out / "learning_curves.png", "training return (CMA-ES: population mean fitness; SB3: episodes)",
                "training steps", curves(results))
    print(table + f"-> {out / 'comparison.md'}, {out / 'learning_curves.png'}")


if __name__ == "__main__":
    main()
