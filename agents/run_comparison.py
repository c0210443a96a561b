"""Runs side by side, score against compute: each run's real score with the real env steps, dream steps and search
time its controller took, as a Markdown table, and the real return of its mean solution against real env steps as
one PNG (``worldmodels compare-runs``).

What is read from each run folder RUN (nothing is run): ``RUN/config.yaml`` (where C was trained, the env),
``RUN/controller/log.csv`` (generations, real env steps of the rollouts and of the mean solution's evaluations,
dream steps, search seconds), ``RUN/controller/eval.csv`` (the learning curve: the mean solution's real return at
each evaluation, against the real env steps taken up to it) and ``RUN/evaluation.json`` (the score). For a run of
the iterative procedure, its last round's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.cmaes import dream_steps, real_env_steps
from agents.evaluation import EvaluationReport
from agents.iterations import round_dir
from rollouts.atomic import atomic_write_text
from worldmodels.config import load_config
from worldmodels.pictures import new_figure, read_csv_columns, save_figure
from worldmodels.run_layout import CMAES_EVAL_NAME, CMAES_LOG_NAME, CONFIG_NAME, CONTROLLER_DIR, EVALUATION_NAME

TABLE_NAME = "comparison.md"
CURVES_NAME = "real_return_per_real_step.png"


@dataclass(frozen=True)
class RunRow:
    """One run's score and what its controller cost."""

    label: str
    run_dir: Path
    trained_in: str
    env_id: str
    generations: int
    real_env_steps: int
    """Real env steps of C's search: its rollouts and its mean solution's evaluations (the data not included)."""
    dream_steps: int
    search_seconds: float
    """Wall seconds of the generations (log.csv ``seconds``: the mean solution's evaluations not included)."""
    score: EvaluationReport
    curve_steps: np.ndarray
    """Real env steps up to each real evaluation of the mean solution (E,)."""
    curve_mean: np.ndarray
    """Mean real return of the mean solution at each evaluation (E,)."""
    curve_std: np.ndarray
    """Its std (E,)."""

    def markdown(self) -> str:
        seeds = f"{self.score.seeds[0]}..{self.score.seeds[-1]}"
        return (f"| {self.label} | {self.trained_in} | {self.generations} | {self.real_env_steps:,} | "
                f"{self.dream_steps:,} | {self.search_seconds / 3600:.2f} | {self.score.mean:.1f} +- "
                f"{self.score.std:.1f} | {self.score.episodes} ({seeds}) |")


def read_run(run_dir: str | Path, label: str | None = None) -> RunRow:
    """The row of run folder ``run_dir`` (its last round's, for the iterative procedure); a missing file is named in
    one ValueError."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise ValueError(f"{run_dir} is not a run folder: it has no {CONFIG_NAME}")
    config = load_config(file=config_path)
    here = round_dir(run_dir, config.iterate.iterations)
    controller = here / CONTROLLER_DIR
    needed = [controller / CMAES_LOG_NAME, here / EVALUATION_NAME]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        raise ValueError(f"{run_dir}: no {' and no '.join(missing)}; train its controller (train-controller) and "
                         "score it (evaluate) first")
    log = read_csv_columns(controller / CMAES_LOG_NAME, ["generation", "seconds"])
    curve = {"env_steps_total": np.zeros(0), "mean_return": np.zeros(0), "std_return": np.zeros(0)}
    if (controller / CMAES_EVAL_NAME).is_file():
        curve = read_csv_columns(controller / CMAES_EVAL_NAME, list(curve), where={"env": "real"}, skip_blank=True)
    return RunRow(label or run_dir.name, run_dir, config.controller.train_in, config.env.id, len(log["generation"]),
                  real_env_steps(controller), dream_steps(controller), float(log["seconds"].sum()),
                  EvaluationReport.read_json(here / EVALUATION_NAME), curve["env_steps_total"],
                  curve["mean_return"], curve["std_return"])


def markdown_table(rows: list[RunRow]) -> str:
    """The rows as a Markdown table, with a line saying what the columns count."""
    lines = ["| run | C trained in | generations | real env steps (C) | dream steps | search hours | real score | "
             "episodes (seeds) |", "|---|---|---|---|---|---|---|---|", *(row.markdown() for row in rows), "",
             "Real env steps: C's rollouts and its mean solution's evaluations during the search (the collected data "
             "and the final evaluation not included). Search hours: wall time of the generations on the machine "
             "that ran them. Real score: the final evaluation, mean +- std of the CMA-ES mean solution."]
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[RunRow], png_path: str | Path) -> None:
    """Each run's mean-solution real return (mean +- std band) against real env steps, its final score as a point
    with a std bar at the run's total real env steps; written atomically."""
    figure, axes = new_figure(7.0, 4.0)
    for row in rows:
        line = axes.plot(row.curve_steps, row.curve_mean, marker=".", label=row.label)[0]
        if len(row.curve_steps):
            axes.fill_between(row.curve_steps, row.curve_mean - row.curve_std, row.curve_mean + row.curve_std,
                              color=line.get_color(), alpha=0.15)
        axes.errorbar([row.real_env_steps], [row.score.mean], yerr=[row.score.std], color=line.get_color(),
                      marker="s", capsize=3)
    axes.set_xlabel("real env steps of C's search")
    axes.set_ylabel("real return")
    axes.set_title("Mean solution's real return (squares: final score, mean +- std)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    save_figure(figure, png_path)


def compare_runs(run_dirs: list[Path], out_dir: str | Path, labels: list[str] | None = None) -> list[RunRow]:
    """Write ``out_dir``/comparison.md and real_return_per_real_step.png for ``run_dirs`` (labels default to the
    folder names)."""
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs: give one label per run, or none")
    rows = [read_run(run_dir, None if labels is None else labels[i]) for i, run_dir in enumerate(run_dirs)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / TABLE_NAME, markdown_table(rows))
    plot_curves(rows, out / CURVES_NAME)
    return rows
