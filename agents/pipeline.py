"""``worldmodels run``: every stage of a preset in order, into one run folder, skipping what is done.

    RUN/episodes/            collect (skips stored episodes), then encode (skips up-to-date latents)
    RUN/vae.pt, mdnrnn.pt    train-vae, train-mdnrnn (resume from their last checkpoint; a finished one returns)
    RUN/calibration*         before CMA-ES spends generations in the dream (``trust.before_dream``): fixed
                             controllers scored in the dream and the real env, the summary printed, with a warning
                             when the dream is not to be trusted (agents/calibration.py; reused while V, M and
                             settings match)
    RUN/controller/          CMA-ES in the real env, the dream, or the dream then the real env (``controller.train_in``;
                             resumes)
    RUN/evaluation.json      the mean solution over ``evaluate.episodes`` real episodes (redone only when
                             the controller is newer), RUN/episode.gif its first episode; each episode's return
                             also as TensorBoard's ``evaluate/episodic_return`` (step: the episode's index)
    RUN/*.png, dream.gif     learning curves of V, M and C, and a dream beside the real episode (agents/run_pictures.py)
    RUN/summary.json         per-stage wall time, frames and env steps used, the score (of the last round), each
                             round's score, the hardware
    RUN/iterations/k/        round k >= 2 of the iterative procedure (``iterate.iterations``; agents/iterations.py)

Interrupted anywhere, the same command continues where it stopped.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cma
import numpy as np
import torch

from agents.calibration import trust_before_evolving
from agents.cmaes import dream_steps, generations_done, real_env_steps
from agents.controller_training import dream_generations, train_controller
from agents.evaluation import EvaluationReport, evaluation_seeds, reusable_report, score_provenance
from agents.iterations import round_dir, run_round
from agents.real_env import evaluate_controller_real
from agents.run_pictures import write_pictures
from rollouts.atomic import atomic_write_text
from rollouts.storage import list_episode_files, read_episode_meta
from worldmodels.config_schema import Config
from worldmodels.device import resolve_device
from worldmodels.encode import encode_episodes
from worldmodels.pictures import read_csv_columns
from worldmodels.run_layout import (
    CALIBRATION_TRUST_NAME,
    CMAES_LOG_NAME,
    CONTROLLER_DIR,
    EPISODE_GIF_NAME,
    EPISODES_DIR,
    EVALUATION_NAME,
    MEAN_PARAMS_NAME,
    SUMMARY_NAME,
    VAE_CHECKPOINT_NAME,
)
from worldmodels.stages import collect_stage
from worldmodels.tensorboard import ScalarLog, event_dir
from worldmodels.train_mdnrnn import train_mdnrnn
from worldmodels.train_vae import train_vae


@dataclass
class StageRecord:
    """One stage of a pipeline call: what it did and how long it took (seconds of wall time)."""

    name: str
    seconds: float
    result: str


def run_pipeline(config: Config, run_dir: str | Path, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage for ``config`` into ``run_dir`` (Ray must be initialised); returns the summary."""
    run_dir = Path(run_dir)
    episodes = run_dir / EPISODES_DIR
    stages: list[StageRecord] = []
    start = time.perf_counter()

    def stage(name: str, work: Callable[[], str]) -> None:
        began = time.perf_counter()
        say(f"run: {name} ...")
        result = work()
        stages.append(StageRecord(name, time.perf_counter() - began, result))
        say(f"run: {name}: {result} ({stages[-1].seconds:.1f} s)")

    def print_generation(record: Any) -> None:
        say(f"run: train-controller: {record.describe()}")

    stage("collect", lambda: collect_stage(config, episodes).describe())
    stage("train-vae", lambda: train_vae(config, episodes, run_dir).describe())
    stage("encode", lambda: f"{encode_episodes(run_dir / VAE_CHECKPOINT_NAME, episodes, device=config.device)} "
                            "episodes encoded (the others were up to date)")
    stage("train-mdnrnn", lambda: train_mdnrnn(config, episodes, run_dir).describe())
    stage("train-controller", lambda: _train_controller(config, run_dir, episodes, print_generation, say))
    stage("evaluate", lambda: _evaluate(config, run_dir).summary())
    stage("pictures", lambda: write_pictures(config, run_dir))
    last = config
    for round_number in range(2, config.iterate.iterations + 1):
        last = run_round(config, run_dir, round_number, stage,
                         train_controller=lambda cfg, here: _train_controller(cfg, here, episodes, print_generation,
                                                                              say),
                         evaluate=lambda cfg, here: _evaluate(cfg, here).summary(), pictures=write_pictures)
    summary = _summary(last, run_dir, stages, time.perf_counter() - start)
    atomic_write_text(run_dir / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    return summary


def _train_controller(config: Config, run_dir: Path, episodes: Path, on_generation: Callable[[Any], None],
                      say: Callable[[str], None]) -> str:
    if config.trust.before_dream and generations_done(run_dir / CONTROLLER_DIR) < dream_generations(config):
        _say_trust(config, run_dir, episodes, say)
    records = train_controller(config, run_dir, episodes, on_generation)
    where = {"real": "in the real env", "dream": "in the dream",
             "dream_then_real": f"in the dream up to generation {config.cmaes.dream_generations}, then in the real env"}
    return (f"{len(records)} generations run, {generations_done(run_dir / CONTROLLER_DIR)} in total, "
            f"{where[config.controller.train_in]}")


def _say_trust(config: Config, run_dir: Path, episodes: Path, say: Callable[[str], None]) -> None:
    """Print whether the dream of ``run_dir``'s M can be trusted, and a warning line when it cannot."""
    began = time.perf_counter()
    summary, reused = trust_before_evolving(config, run_dir, episodes)
    path = run_dir / CALIBRATION_TRUST_NAME
    how = f"reused {path}: it scored this V and M" if reused else f"scored in {time.perf_counter() - began:.1f} s -> {path}"
    for line in [*summary.describe(), f"  ({how})"]:
        say(f"run: train-controller: {line}")
    if (warning := summary.warning()) is not None:
        say(f"run: train-controller: {warning}")


def _evaluate(config: Config, run_dir: Path) -> EvaluationReport:
    """The mean solution's real-env score; reuses RUN/evaluation.json when it scored this controller with this V,
    M and settings (:func:`agents.evaluation.score_provenance`) on the seeds ``evaluate`` asks for now
    (``evaluate.seed``, ``evaluate.episodes``)."""
    report_path, params_path = run_dir / EVALUATION_NAME, run_dir / CONTROLLER_DIR / MEAN_PARAMS_NAME
    seeds = evaluation_seeds(config.evaluate.seed, config.evaluate.episodes)
    if (report := reusable_report(report_path, seeds, score_provenance(config, run_dir, params_path))) is not None:
        return report
    report = evaluate_controller_real(config, run_dir, config.evaluate.episodes, gif=run_dir / EPISODE_GIF_NAME)
    report.write_json(report_path)
    with ScalarLog(event_dir(run_dir, "evaluate"), "evaluate", first_step=0) as scalars:
        for episode, episode_return in enumerate(report.returns):
            scalars.write(episode, {"episodic_return": episode_return})
    return report


def _summary(config: Config, run_dir: Path, stages: list[StageRecord], seconds: float) -> dict[str, Any]:
    """What a researcher compares across runs: score, data and steps used, time, hardware.

    ``config`` is the last round's (its budgets are the totals); the score is the last round's controller.
    """
    frames = sum(read_episode_meta(path)["length"] + 1 for path in list_episode_files(run_dir / EPISODES_DIR))
    rounds = [_round_summary(run_dir, number) for number in range(1, config.iterate.iterations + 1)]
    return {
        "preset": config.preset,
        "controller_trained_in": config.controller.train_in,
        "score": rounds[-1]["score"],
        "frames_collected": frames,
        "controller_env_steps": rounds[-1]["controller_env_steps"],
        "env_steps_total": frames + rounds[-1]["controller_env_steps"],
        "controller_dream_steps": rounds[-1]["controller_dream_steps"],
        "generations": config.cmaes.generations,
        "rounds": rounds,
        "stages": [asdict(record) for record in stages],
        "wall_seconds_this_call": seconds,
        "hardware": _hardware(config),
    }


def _hardware(config: Config) -> dict[str, Any]:
    """What a replay needs to match bit for bit: the CPU model, thread count, device and library versions (float
    rounding differs between CPUs and thread counts, and training and chaotic envs amplify it)."""
    return {
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cma": cma.__version__,
        "device": (torch.cuda.get_device_name() if resolve_device(config.device).type == "cuda" else "cpu"),
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _round_summary(run_dir: Path, round_number: int) -> dict[str, Any]:
    """One round's score and the controller's real env and dream steps up to its end, its rollouts' and its mean
    solution's evaluations' (each round's log holds the earlier ones)."""
    here = round_dir(run_dir, round_number)
    evaluation = EvaluationReport.read_json(here / EVALUATION_NAME)
    generations = read_csv_columns(here / CONTROLLER_DIR / CMAES_LOG_NAME, ["generation"])
    return {
        "round": round_number,
        "score": {"mean": evaluation.mean, "std": evaluation.std, "min": evaluation.min, "max": evaluation.max,
                  "episodes": evaluation.episodes, "first_seed": evaluation.seeds[0]},
        "generations": len(generations["generation"]),
        "controller_env_steps": real_env_steps(here / CONTROLLER_DIR),
        "controller_dream_steps": dream_steps(here / CONTROLLER_DIR),
    }
