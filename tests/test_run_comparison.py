"""``worldmodels compare-runs``: the table counts what the runs' logs count, the plot is written, and a run folder
that is not finished is named in one line."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import StepCountingWorker

from agents.cmaes import dream_steps, evolve, real_env_steps
from agents.evaluation import EvaluationReport
from agents.evaluators import SerialEvaluator
from agents.run_comparison import CURVES_NAME, TABLE_NAME, compare_runs
from worldmodels.cli import main
from worldmodels.config import load_config, save_config
from worldmodels.config_schema import CMAESConfig


class DreamWorker:
    """Synthetic dreams: the dream from seed s lives 1 + s % 5 steps."""

    def __init__(self) -> None:
        self.dream_steps = 0

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        self.dream_steps += int(np.sum(1 + seeds % 5))
        return -np.sum((params - 0.1) ** 2, axis=1)


def finished_run(tmp_path, name: str, worker, train_in: str, evaluate: bool = True):
    run = tmp_path / name
    run.mkdir()
    save_config(load_config("carracing-tiny", [f"controller.train_in={train_in}"]), run / "config.yaml")
    settings = CMAESConfig(popsize=4, rollouts=2, generations=4, eval_every=2, eval_episodes=3, seed=2)
    evaluator = SerialEvaluator(worker)
    real = SerialEvaluator(StepCountingWorker)
    evolve(evaluator, 5, settings, run / "controller", evaluations={"real": real})
    if evaluate:
        EvaluationReport.from_returns(np.array([10.0, 12.0, 14.0]), np.arange(1_000_000, 1_000_003)).write_json(
            run / "evaluation.json")
    return run, evaluator.env_steps + real.env_steps, evaluator.dream_steps


def test_the_table_counts_the_steps_the_searches_took_and_the_plot_is_written(tmp_path):
    real_run, real_steps, _ = finished_run(tmp_path, "real", StepCountingWorker, "real")
    dream_run, dream_real_steps, dreamed = finished_run(tmp_path, "dream", DreamWorker, "dream")
    assert dreamed > 0 and dream_steps(dream_run / "controller") == dreamed
    rows = compare_runs([real_run, dream_run], tmp_path / "out", ["in the real env", "in the dream"])
    assert [row.real_env_steps for row in rows] == [real_steps, dream_real_steps]
    assert [row.dream_steps for row in rows] == [0, dreamed]
    assert real_env_steps(real_run / "controller") == real_steps
    assert all(row.generations == 4 and len(row.curve_steps) == 2 for row in rows)
    table = (tmp_path / "out" / TABLE_NAME).read_text()
    assert f"| in the real env | real | 4 | {real_steps:,} | 0 |" in table
    assert f"| in the dream | dream | 4 | {dream_real_steps:,} | {dreamed:,} |" in table
    assert "12.0 +- 1.6 | 3 (1000000..1000002) |" in table
    assert (tmp_path / "out" / CURVES_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_not_yet_evaluated_or_not_a_run_is_refused_in_one_line(tmp_path, capsys):
    run, _, _ = finished_run(tmp_path, "unscored", StepCountingWorker, "real", evaluate=False)
    with pytest.raises(ValueError, match="evaluation.json.*score it"):
        compare_runs([run], tmp_path / "out")
    with pytest.raises(ValueError, match="one label per run"):
        compare_runs([run], tmp_path / "out", ["a", "b"])
    assert main(["compare-runs", "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not a run folder" in error
    assert not (tmp_path / "out").exists()  # nothing written
