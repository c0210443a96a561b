"""Controller training inside M's dream: CMA-ES whose whole population is one batch of dreams.

Each generation's P candidates x R rollouts run as P * R dreams in one :class:`worldmodels.dream.DreamSimulator`
in this process (on the GPU when there is one). Every ``cmaes.eval_every`` generations the mean solution
is evaluated both in the dream and in the real environment (Ray workers), so eval.csv shows the gap
between what M predicts and what the real game gives. With ``real_from`` G (``controller.train_in``
``dream_then_real``) the same search goes on in the real env from generation G: its candidates and its mean
solution are then evaluated there only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agents.cmaes import GenerationRecord, Phase, evolve
from agents.evaluators import Evaluator, SerialEvaluator
from agents.real_env import real_evaluator
from worldmodels.config_schema import Config
from worldmodels.dream import DreamSimulatorSpec, settings_from_config
from worldmodels.real_rollouts import RealEnvWorkerSpec, world_model_paths
from worldmodels.run_layout import CONTROLLER_DIR, mdnrnn_member_checkpoints
from worldmodels.seeds import held_out_seeds


def dream_spec(config: Config, run_dir: Path, data_dir: Path) -> DreamSimulatorSpec:
    """The dream of this run: M from RUN/mdnrnn.pt (and ``dream.members`` of its ensemble, see
    :func:`worldmodels.run_layout.mdnrnn_member_checkpoints`), V (to draw dreams) from RUN/vae.pt, starts from
    ``data_dir``.

    :raises FileNotFoundError: a checkpoint is missing (naming the stage that makes it).
    """
    vae_path, mdnrnn_path = world_model_paths(run_dir)
    members = mdnrnn_member_checkpoints(run_dir, config.dream.members)
    return DreamSimulatorSpec(mdnrnn_path, data_dir, vae_path, settings_from_config(config), config.device,
                              config.dream.start_episodes, tuple(members[1:]))


def train_controller_dream(config: Config, run_dir: str | Path, data_dir: str | Path,
                           on_generation: Callable[[GenerationRecord], None] | None = None,
                           out_dir: str | Path | None = None, real: Evaluator | None = None,
                           real_from: int | None = None) -> list[GenerationRecord]:
    """Evolve C in the batched dream (Ray must be initialised for the real-env evaluations); resumes
    ``out_dir`` (default RUN/controller/). ``data_dir`` holds the encoded episodes whose first frames start
    the dreams. ``real`` evaluates the mean solution in the real env (default: Ray workers made and closed
    here; pass one to share its workers across calls); from generation ``real_from`` on (None: never) it
    evaluates the candidates too, in the dream's place."""
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / CONTROLLER_DIR
    dream = SerialEvaluator(dream_spec(config, run_dir, data_dir))
    owned = real is None
    real = real_evaluator(config, RealEnvWorkerSpec.for_run(config, run_dir)) if real is None else real
    try:
        return evolve(dream, dream.worker.num_params, config.cmaes, out_dir, on_generation,
                      evaluations={"dream": dream, "real": real},
                      then=None if real_from is None else Phase(real_from, real, {"real": real}),
                      held_out_seeds=held_out_seeds(config))
    finally:
        if owned:
            real.close()
