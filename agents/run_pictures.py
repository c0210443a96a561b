"""The pictures of a run folder: learning curves of V, M and C, the mean solution's evaluations (per generation, and
its real return per real env step), and the controller's dream beside a real episode (what ``worldmodels run`` draws
after each round)."""

from __future__ import annotations

from pathlib import Path

from worldmodels.config_schema import Config
from worldmodels.controller import load_params
from worldmodels.device import resolve_device
from worldmodels.dream import settings_from_config
from worldmodels.dream_video import dream_beside_real
from worldmodels.pictures import Series, plot_series, read_csv_columns, write_gif
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import (
    CMAES_EVAL_NAME,
    CMAES_LOG_NAME,
    CONTROLLER_CURVES_NAME,
    CONTROLLER_DIR,
    DREAM_GIF_NAME,
    EVALUATION_CURVES_NAME,
    MDNRNN_CURVES_NAME,
    MDNRNN_LOG_NAME,
    MEAN_PARAMS_NAME,
    REAL_STEPS_CURVE_NAME,
    VAE_CURVES_NAME,
    VAE_LOG_NAME,
)


def write_pictures(config: Config, run_dir: Path) -> str:
    """Learning curves of V, M and C as PNG, and a dream beside a real episode as GIF; returns what was written."""
    written = []
    curves = (
        (VAE_LOG_NAME, "step", ["loss", "reconstruction", "kl"], "V: loss per frame (nats)", VAE_CURVES_NAME),
        (MDNRNN_LOG_NAME, "step", ["loss", "z_nll"], "M: loss per step", MDNRNN_CURVES_NAME),
        (f"{CONTROLLER_DIR}/{CMAES_LOG_NAME}", "generation", ["best_fitness", "mean_fitness", "worst_fitness"],
         "C: CMA-ES fitness", CONTROLLER_CURVES_NAME),
    )
    for log_name, x, columns, title, png in curves:
        if (run_dir / log_name).is_file():
            values = read_csv_columns(run_dir / log_name, [x, *columns])
            plot_series(run_dir / png, title, x, {name: Series(values[x], values[name]) for name in columns})
            written.append(png)
    eval_log = run_dir / CONTROLLER_DIR / CMAES_EVAL_NAME
    if eval_log.is_file():
        series: dict[str, Series] = {}
        for env in ("train", "dream", "real"):
            values = read_csv_columns(eval_log, ["generation", "mean_return", "std_return"], where={"env": env})
            if len(values["generation"]):
                series[f"{env} (mean +- std)"] = Series(values["generation"], values["mean_return"],
                                                        values["std_return"])
        if series:
            plot_series(run_dir / EVALUATION_CURVES_NAME, "C: mean solution's return", "generation", series)
            written.append(EVALUATION_CURVES_NAME)
        real = read_csv_columns(eval_log, ["env_steps_total", "mean_return", "std_return"], where={"env": "real"},
                                skip_blank=True)
        if len(real["env_steps_total"]):
            curve = Series(real["env_steps_total"], real["mean_return"], real["std_return"])
            plot_series(run_dir / REAL_STEPS_CURVE_NAME, "C: mean solution's real return per real env step",
                        "real env steps (rollouts and evaluations)", {"real (mean +- std)": curve})
            written.append(REAL_STEPS_CURVE_NAME)
    params_path = run_dir / CONTROLLER_DIR / MEAN_PARAMS_NAME
    params = load_params(params_path) if params_path.is_file() else None
    video = dream_beside_real(RealEnvWorkerSpec.for_run(config, run_dir, num_envs=1), settings_from_config(config),
                              params, config.evaluate.seed, resolve_device(config.device))
    write_gif(run_dir / DREAM_GIF_NAME, video.frames)
    written.append(DREAM_GIF_NAME)
    return ", ".join(written)
