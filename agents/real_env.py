"""Controller training and evaluation in the real environment, from a run folder holding V and M.

Run folder layout: ``RUN/vae.pt`` and ``RUN/mdnrnn.pt`` (from ``train-vae`` / ``train-mdnrnn``), the
CMA-ES outputs under ``RUN/controller/`` (see :mod:`agents.cmaes`), and ``RUN/evaluation.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from agents.cmaes import GenerationRecord, evolve
from agents.evaluation import EvaluationReport, evaluate_params, score_provenance
from agents.evaluators import RayEvaluator
from envs.carracing import describe_lap
from worldmodels.config_schema import Config
from worldmodels.controller import load_params
from worldmodels.pictures import write_gif
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import CONTROLLER_DIR, MEAN_PARAMS_NAME, WORST_EPISODES_DIR
from worldmodels.seeds import held_out_seeds

log = logging.getLogger(__name__)


def real_evaluator(config: Config, spec: RealEnvWorkerSpec) -> RayEvaluator:
    """Ray workers running ``spec``'s controllers in the real env: ``cmaes.num_workers`` of them, each chunk retried
    up to ``cmaes.max_retries`` times, giving up after ``ray.max_stall_s`` seconds without a result."""
    return RayEvaluator(spec, config.cmaes.num_workers, max_retries=config.cmaes.max_retries,
                        max_stall_s=config.ray.max_stall_s)


def train_controller_real(config: Config, run_dir: str | Path,
                          on_generation: Callable[[GenerationRecord], None] | None = None) -> list[GenerationRecord]:
    """Evolve C in the real env with Ray workers (Ray must be initialised); resumes RUN/controller/."""
    run_dir = Path(run_dir)
    spec = RealEnvWorkerSpec.for_run(config, run_dir)
    evaluator = real_evaluator(config, spec)
    try:
        return evolve(evaluator, spec.num_params, config.cmaes, run_dir / CONTROLLER_DIR, on_generation,
                      evaluations={"real": evaluator}, held_out_seeds=held_out_seeds(config))
    finally:
        evaluator.close()


def evaluate_controller_real(config: Config, run_dir: str | Path, episodes: int,
                             params_path: str | Path | None = None, gif: str | Path | None = None,
                             worst_gifs: int = 0, worst_dir: str | Path | None = None) -> EvaluationReport:
    """Evaluate a controller (default RUN/controller/mean.npy) on ``episodes`` seeds in parallel; the report records
    its :func:`agents.evaluation.score_provenance`.

    With ``gif``, the first episode is also run in this process and its frames written there. With ``worst_gifs``
    = N, so are the N lowest-return episodes, to ``worst_dir`` (default RUN/worst_episodes) as
    ``worst_<rank>_seed_<seed>.gif``: each replays its evaluation episode exactly (an episode's return does not
    depend on batching).
    """
    run_dir = Path(run_dir)
    spec = RealEnvWorkerSpec.for_run(config, run_dir)
    if params_path is None:
        params_path = run_dir / CONTROLLER_DIR / MEAN_PARAMS_NAME
        if not params_path.is_file():
            raise FileNotFoundError(f"{params_path} does not exist: run `worldmodels train-controller --run {run_dir}` "
                                    "first, or pass --params")
    params = load_params(params_path, spec.num_params)
    provenance = score_provenance(config, run_dir, Path(params_path))
    evaluator = real_evaluator(config, spec)
    try:
        report = evaluate_params(evaluator, params, episodes, config.evaluate.seed)
    finally:
        evaluator.close()
    report = replace(report, provenance=provenance)
    recordings = [(report.seeds[0], Path(gif))] if gif is not None else []
    folder = Path(worst_dir) if worst_dir is not None else run_dir / WORST_EPISODES_DIR
    recordings += [(seed, folder / f"worst_{rank}_seed_{seed}.gif")
                   for rank, (seed, _) in enumerate(report.worst(worst_gifs), start=1)]
    if recordings:
        record_episodes(spec, params, recordings)
    return report


def record_episodes(spec: RealEnvWorkerSpec, params: np.ndarray, recordings: list[tuple[int, Path]]) -> None:
    """Run controller ``params`` (D,) once per (seed, path) in this process and write each episode's frames there
    as a GIF (folders made as needed); logs each episode's return, and how its lap went on CarRacing."""
    worker = spec()
    try:
        for seed, path in recordings:
            episode = worker.record(params, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_gif(path, episode.frames)
            lap = describe_lap(episode.last_info)
            log.info("seed %d: return %.1f%s -> %s", seed, episode.episode_return, f" ({lap})" if lap else "", path)
    finally:
        worker.close()
