"""The paper's temperature table: one dream-trained controller per tau, its dream and real scores.

For each tau the controller is evolved in the dream at that temperature (``RUN/sweep/tau_<tau>/``, resumable),
then its mean solution is scored over ``evaluate.episodes`` episodes in the dream at the same tau and in the
real environment, mean +- std each (kept beside it with what they scored, so a resumed sweep scores only what is
new). The table goes to ``RUN/temperature_sweep.md`` and ``.json``, the sweep's config to ``RUN/sweep/config.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agents.cmaes import GenerationRecord
from agents.dream_training import dream_spec, train_controller_dream
from agents.evaluation import (
    EvaluationReport,
    evaluate_params,
    evaluation_seeds,
    reusable_report,
    score_provenance,
)
from agents.evaluators import Evaluator, SerialEvaluator
from agents.real_env import real_evaluator
from rollouts.atomic import atomic_write_text
from worldmodels.config import save_config
from worldmodels.config_schema import PUBLISHED_TEMPERATURES, Config
from worldmodels.controller import load_params
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import (
    CONFIG_NAME,
    MEAN_PARAMS_NAME,
    SWEEP_DIR,
    SWEEP_DREAM_SCORE_NAME,
    SWEEP_REAL_SCORE_NAME,
    TEMPERATURE_SWEEP_STEM,
)


@dataclass
class SweepRow:
    """One temperature's controller, scored in the dream (at that tau) and in the real env."""

    temperature: float
    dream: EvaluationReport
    real: EvaluationReport


def temperature_sweep(config: Config, run_dir: str | Path, data_dir: str | Path,
                      temperatures: tuple[float, ...] = PUBLISHED_TEMPERATURES,
                      on_generation: Callable[[float, GenerationRecord], None] | None = None) -> list[SweepRow]:
    """Train and score one controller per temperature (Ray must be initialised); writes the table."""
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    rows = []
    # one set of Ray workers for every temperature
    real = real_evaluator(config, RealEnvWorkerSpec.for_run(config, run_dir))
    save_config(config, run_dir / SWEEP_DIR / CONFIG_NAME)
    try:
        for tau in temperatures:
            tau_config = replace(config, dream=replace(config.dream, temperature=tau))
            out = run_dir / SWEEP_DIR / f"tau_{tau:g}"
            train_controller_dream(tau_config, run_dir, data_dir, None if on_generation is None else
                                   (lambda record, tau=tau: on_generation(tau, record)), out_dir=out, real=real)
            params_path = out / MEAN_PARAMS_NAME
            dream_score = _score(lambda: SerialEvaluator(dream_spec(tau_config, run_dir, data_dir)),
                                 out / SWEEP_DREAM_SCORE_NAME, params_path,
                                 score_provenance(tau_config, run_dir, params_path, data_dir), config)
            real_score = _score(lambda: real, out / SWEEP_REAL_SCORE_NAME, params_path,
                                score_provenance(tau_config, run_dir, params_path), config)
            rows.append(SweepRow(tau, dream_score, real_score))
    finally:
        real.close()
    write_table(rows, run_dir / TEMPERATURE_SWEEP_STEM, published_table(config))
    return rows


def _score(make_evaluator: Callable[[], Evaluator], report_path: Path, params_path: Path,
           provenance: dict[str, Any], config: Config) -> EvaluationReport:
    """The controller at ``params_path`` scored on the ``evaluate`` seeds by the evaluator ``make_evaluator`` builds,
    kept at ``report_path`` with its ``provenance``; reused from there while that is unchanged (a resumed sweep does
    not score a finished temperature again, nor builds its evaluator)."""
    seeds = evaluation_seeds(config.evaluate.seed, config.evaluate.episodes)
    if (report := reusable_report(report_path, seeds, provenance)) is None:
        report = evaluate_params(make_evaluator(), load_params(params_path), config.evaluate.episodes,
                                 config.evaluate.seed)
        report = replace(report, provenance=provenance)
        report.write_json(report_path)
    return report


PAPER_DOOM_TABLE: dict[float, tuple[str, str]] = {
    0.1: ("2086 +- 140", "193 +- 58"),
    0.5: ("2060 +- 277", "196 +- 50"),
    1.0: ("1145 +- 690", "868 +- 511"),
    1.15: ("918 +- 546", "1092 +- 556"),
    1.3: ("732 +- 269", "753 +- 139"),
}
"""The paper's Doom TakeCover table (Ha and Schmidhuber 2018): dream and real score of the controller evolved in the
dream at each tau, 100 episodes each."""


def published_table(config: Config) -> dict[float, tuple[str, str]] | None:
    """The paper's rows to set beside a sweep of this config's env: Doom TakeCover's table, else None."""
    return PAPER_DOOM_TABLE if "TakeCover" in config.env.id else None


def markdown_table(rows: list[SweepRow], paper: dict[float, tuple[str, str]] | None = None) -> str:
    """The paper's table layout: temperature, dream score, real score (mean +- std over N episodes), and with
    ``paper`` the paper's dream and real score at each temperature beside them ("-" where it has none)."""
    header = "| temperature | dream score | real score |" + (" paper: dream | paper: real |" if paper else "")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for row in rows:
        line = (f"| {row.temperature:g} | {row.dream.mean:.0f} +- {row.dream.std:.0f} | "
                f"{row.real.mean:.0f} +- {row.real.std:.0f} |")
        if paper:
            line += " {} | {} |".format(*paper.get(row.temperature, ("-", "-")))
        lines.append(line)
    if rows:
        lines.append(f"\nMean +- std over {rows[0].real.episodes} episodes each (seeds {rows[0].real.seeds[0]} and up)"
                     + ("; the paper's over 100 episodes." if paper else "."))
    return "\n".join(lines) + "\n"


def write_table(rows: list[SweepRow], stem: Path, paper: dict[float, tuple[str, str]] | None = None) -> None:
    """``stem``.md (the table, with ``paper``'s rows beside it) and ``stem``.json (every return and seed),
    atomically."""
    atomic_write_text(stem.with_suffix(".md"), markdown_table(rows, paper))
    atomic_write_text(stem.with_suffix(".json"), json.dumps([asdict(row) for row in rows], indent=2) + "\n")
