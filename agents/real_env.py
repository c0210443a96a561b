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
import ray

from agents.cmaes import GenerationRecord, evolve
from agents.evaluation import EvaluationReport, evaluate_params, score_provenance
from agents.evaluators import RayEvaluator
from envs.carracing import describe_lap
from rollouts.actor_pool import ACTOR_CPUS, ReplacingActorPool, pool_size
from worldmodels.config_schema import Config
from worldmodels.controller import load_params
from worldmodels.pictures import write_gif
from worldmodels.real_rollouts import RealEnvWorkerSpec, RecordedEpisode
from worldmodels.run_layout import CONTROLLER_DIR, MEAN_PARAMS_NAME, WORST_EPISODES_DIR
from worldmodels.seeds import held_out_seeds

log = logging.getLogger(__name__)


def real_evaluator(config: Config, spec: RealEnvWorkerSpec, progress: str | None = None) -> RayEvaluator:
    """Ray workers running ``spec``'s controllers in the real env: ``cmaes.num_workers`` of them, each chunk retried
    up to ``cmaes.max_retries`` times, giving up after ``ray.max_stall_s`` seconds without a result.

    :param progress: None: one even chunk of each call's rollouts per worker, no bar (CMA-ES generations, which log
        a line each). A label: chunks of ``spec.num_envs`` rollouts (one lock-step group, as a worker runs them) and
        a bar under that label of the episodes finished. Returns do not depend on the chunking.
    """
    return RayEvaluator(spec, config.cmaes.num_workers, chunk_size=None if progress is None else spec.num_envs,
                        max_retries=config.cmaes.max_retries, max_stall_s=config.ray.max_stall_s, progress=progress)


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

    With ``gif``, the first episode is run again on a Ray actor and its frames written there. With ``worst_gifs``
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
    evaluator = real_evaluator(config, spec, progress="evaluate")
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
        record_episodes(config, spec, params, recordings)
    return report


def record_episodes(config: Config, spec: RealEnvWorkerSpec, params: np.ndarray,
                    recordings: list[tuple[int, Path]]) -> None:
    """Run controller ``params`` (D,) once per (seed, path), spread over up to ``cmaes.num_workers`` Ray actors (Ray
    must be initialised; a lost actor's episode is recorded again on another), and write each episode's frames there
    as a GIF (folders made as needed); logs each episode's return, and how its lap went on CarRacing."""
    one_env = ray.put(replace(spec, num_envs=1))
    pool = ReplacingActorPool(lambda: _RecorderActor.remote(one_env), pool_size(config.cmaes.num_workers,
                                                                                len(recordings)),
                              max_stall_s=config.ray.max_stall_s)

    def write(recording: tuple[int, Path], episode: RecordedEpisode) -> None:
        seed, path = recording
        path.parent.mkdir(parents=True, exist_ok=True)
        write_gif(path, episode.frames)
        lap = describe_lap(episode.last_info)
        log.info("seed %d: return %.1f%s -> %s", seed, episode.episode_return, f" ({lap})" if lap else "", path)

    try:
        pool.map(recordings, lambda actor, recording: actor.record.remote(params, recording[0]), write,
                 config.cmaes.max_retries, describe=lambda recording: f"the recording of seed {recording[0]}")
    finally:
        pool.shutdown()


class _Recorder:
    """Ray actor body: one real-env worker recording episodes (its frames and last info come back to the driver)."""

    def __init__(self, spec: RealEnvWorkerSpec) -> None:
        self.worker = spec()

    def record(self, params: np.ndarray, seed: int) -> RecordedEpisode:
        """One episode of ``params`` (D,) from ``seed``: :meth:`RealEnvWorker.record`."""
        return self.worker.record(params, seed)


_RecorderActor = ray.remote(num_cpus=ACTOR_CPUS, max_restarts=0)(_Recorder)
