"""Controller training and evaluation in the real environment, from a run folder holding V and M.

Run folder layout: ``RUN/vae.pt`` and ``RUN/mdnrnn.pt`` (from ``train-vae`` / ``train-mdnrnn``), the
CMA-ES outputs under ``RUN/controller/`` (see :mod:`agents.cmaes`), and ``RUN/evaluation.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from agents.cmaes import GenerationRecord, evolve
from agents.evaluation import EvaluationReport, evaluate_params, score_provenance
from agents.evaluators import RayEvaluator
from worldmodels.config_schema import Config
from worldmodels.controller import load_params
from worldmodels.pictures import write_gif
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import CONTROLLER_DIR, MEAN_PARAMS_NAME
from worldmodels.seeds import held_out_seeds


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
                             params_path: str | Path | None = None, gif: str | Path | None = None) -> EvaluationReport:
    """Evaluate a controller (default RUN/controller/mean.npy) on ``episodes`` seeds in parallel; the report records
    its :func:`agents.evaluation.score_provenance`.

    With ``gif``, the first episode is also run in this process and its frames written there.
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
    if gif is not None:
        worker = spec()
        _, frames = worker.record(params, report.seeds[0])
        worker.close()
        write_gif(gif, frames)
    return report
