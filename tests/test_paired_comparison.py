"""``worldmodels compare-evaluations``: two reports on the same seeds differenced seed by seed, with the standard
error of the mean difference, what their provenance differs in, and one clear error for reports that cannot be
paired."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation import EvaluationReport, PairedComparison
from worldmodels.cli import main

SEEDS = np.arange(1_000_000, 1_000_005)
PROVENANCE = {"files": {"controller": "aa", "vae.pt": "bb"}, "settings": {"env": {"id": "fast"}, "controller": {}}}


def report(returns: list[float], seeds: np.ndarray = SEEDS, provenance: dict | None = None) -> EvaluationReport:
    return replace(EvaluationReport.from_returns(np.array(returns), seeds), provenance=provenance)


def test_the_difference_is_taken_seed_by_seed():
    # The same tracks are hard for both: the means differ by 10 with a spread of about 300 each, but every seed
    # differs by 8 to 12, so the paired standard error is small.
    first, second = report([900, 310, 620, 100, 820]), report([890, 300, 608, 92, 810])
    comparison = PairedComparison.of(first, second)
    assert comparison.mean_difference == pytest.approx(10.0)
    assert comparison.standard_error == pytest.approx(np.std([10, 10, 12, 8, 10], ddof=1) / np.sqrt(5))
    assert (comparison.episodes, comparison.first_higher, comparison.differences) == (5, 5, None)
    assert comparison.describe() == ("first - second, paired by seed: +10.0 (standard error 0.6, +15.8 standard "
                                     "errors; the first higher on 5 of 5 seeds)")
    assert PairedComparison.of(second, first).mean_difference == pytest.approx(-10.0)
    same = PairedComparison.of(first, first)
    assert (same.mean_difference, same.standard_error, same.first_higher) == (0.0, 0.0, 0)
    assert "standard errors" not in same.describe()


def test_reports_on_other_seeds_or_one_episode_cannot_be_paired():
    with pytest.raises(ValueError, match=r"different seeds \(5 seeds from 1000000 and 5 seeds from 1000100\): score "
                                         r"both with the same evaluate.seed"):
        PairedComparison.of(report([1, 2, 3, 4, 5]), report([1, 2, 3, 4, 5], SEEDS + 100))
    with pytest.raises(ValueError, match="at least 2 episodes"):
        PairedComparison.of(report([1.0], SEEDS[:1]), report([2.0], SEEDS[:1]))


def test_the_command_prints_both_scores_the_difference_and_what_differs(tmp_path: Path, capsys):
    other = {"files": {"controller": "cc", "vae.pt": "bb"}, "settings": {"env": {"id": "lowres"}, "controller": {}}}
    report([900, 310, 620, 100, 820], provenance=PROVENANCE).write_json(tmp_path / "a.json")
    report([890, 300, 608, 92, 810], provenance=other).write_json(tmp_path / "b.json")
    assert main(["compare-evaluations", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"first: {tmp_path / 'a.json'}: 550.0 +- 303.4 over 5 episodes (seeds 1000000..1000004)"
    assert lines[2].startswith("first - second, paired by seed: +10.0 (standard error 0.6")
    assert lines[3] == "they differ in: files controller, settings env"
    report([1, 2, 3, 4, 5], SEEDS + 100).write_json(tmp_path / "c.json")
    assert main(["compare-evaluations", str(tmp_path / "a.json"), str(tmp_path / "c.json")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "different seeds" in error
    (tmp_path / "d.json").write_text("{not json")
    assert main(["compare-evaluations", str(tmp_path / "a.json"), str(tmp_path / "d.json")]) == 2
    assert "d.json is not an evaluation report" in capsys.readouterr().err
