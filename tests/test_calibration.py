"""The calibration diagnostic's pieces: tie-aware ranks, the rank correlation, the fixed controllers."""

from __future__ import annotations

import numpy as np
import pytest

from agents.calibration import Calibration, CalibrationRow, average_ranks, fixed_controllers
from agents.evaluation import EvaluationReport


def report(mean: float) -> EvaluationReport:
    return EvaluationReport.from_returns(np.array([mean]), np.array([0]))


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks(np.array([10.0, 30.0, 20.0])), [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(average_ranks(np.array([193.4, 5.0, 193.4, 700.0])), [2.5, 1.0, 2.5, 4.0])


def test_rank_correlation_is_one_when_the_dream_orders_controllers_as_the_real_env_does():
    def calibration(dream: list[float], real: list[float]) -> Calibration:
        return Calibration(1.15, [CalibrationRow(str(i), report(d), report(r)) for i, (d, r) in
                                  enumerate(zip(dream, real))])

    assert calibration([100, 700, 300], [150, 900, 200]).rank_correlation == pytest.approx(1.0)
    assert calibration([100, 700, 300], [900, 150, 400]).rank_correlation == pytest.approx(-1.0)
    # The wall exploit: the dream's best controller is no better than the others in the real game.
    assert calibration([145, 786, 641], [147, 193.4, 193.4]).rank_correlation == pytest.approx(0.866, abs=1e-3)
    assert calibration([1], [2]).rank_correlation is None
    assert calibration([1, 5], [80, 80]).rank_correlation is None  # every real episode hit the step cap


def test_fixed_controllers_are_seeded_and_files_are_checked(tmp_path):
    first, again = fixed_controllers(12, (0.1, 1.0), 2, seed=3), fixed_controllers(12, (0.1, 1.0), 2, seed=3)
    assert list(first) == ["zeros", "random N(0, 0.1^2) #0", "random N(0, 0.1^2) #1", "random N(0, 1^2) #0",
                           "random N(0, 1^2) #1"]
    assert all(params.shape == (12,) and params.dtype == np.float32 for params in first.values())
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert 0.5 < first["random N(0, 1^2) #0"].std() < 2 and first["random N(0, 0.1^2) #0"].std() < 0.3
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros(7))
    with pytest.raises(ValueError, match=r"wrong.npy hold 7 values, but this run's controller has 12"):
        fixed_controllers(12, files=[wrong])
    with pytest.raises(ValueError, match="weight scales must be > 0"):
        fixed_controllers(12, scales=(0.0,))
