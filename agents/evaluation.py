"""Honest evaluation of one controller: every episode on its own seed, reported as mean +- std."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agents.evaluators import Evaluator
from rollouts.atomic import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class EvaluationReport:
    """Statistics of a controller's episode returns (std is the population std, ddof=0)."""

    mean: float
    std: float
    min: float
    max: float
    episodes: int
    returns: list[float]
    seeds: list[int]

    @classmethod
    def from_returns(cls, returns: np.ndarray, seeds: np.ndarray) -> EvaluationReport:
        """The statistics of episode ``returns`` (E,), episode i run from ``seeds[i]`` (E,)."""
        returns = np.asarray(returns, np.float64)
        if returns.shape != (len(seeds),) or not len(seeds):
            raise ValueError(f"one return per seed needed, got returns {returns.shape} and {len(seeds)} seeds")
        return cls(mean=float(returns.mean()), std=float(returns.std()), min=float(returns.min()),
                   max=float(returns.max()), episodes=len(returns), returns=[float(r) for r in returns],
                   seeds=[int(s) for s in seeds])

    def summary(self) -> str:
        """mean +- std over the episodes, and their seeds when they are consecutive (as :func:`evaluation_seeds`)."""
        consecutive = self.seeds == list(range(self.seeds[0], self.seeds[0] + self.episodes))
        seeds = f" (seeds {self.seeds[0]}..{self.seeds[-1]})" if consecutive else ""
        return f"{self.mean:.1f} +- {self.std:.1f} over {self.episodes} episodes{seeds}"

    def write_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read_json(cls, path: str | Path) -> EvaluationReport:
        """A report written by :meth:`write_json`.

        :raises ValueError: the file is not such a report (the message names it).
        """
        try:
            report = cls(**json.loads(Path(path).read_text()))
            consistent = len(report.returns) == len(report.seeds) == report.episodes
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path} is not an evaluation report ({type(err).__name__}: {err})") from None
        if not consistent:
            raise ValueError(f"{path} is not an evaluation report: {report.episodes} episodes, "
                             f"{len(report.returns)} returns, {len(report.seeds)} seeds")
        return report


def reusable_report(report_path: Path, params_path: Path, seeds: np.ndarray) -> EvaluationReport | None:
    """The report at ``report_path`` when it is newer than the controller at ``params_path`` and ran on ``seeds``
    (E,); else None, so that the caller scores again (a report that cannot be read is logged and ignored)."""
    if not report_path.is_file() or report_path.stat().st_mtime_ns <= params_path.stat().st_mtime_ns:
        return None
    try:
        report = EvaluationReport.read_json(report_path)
    except ValueError as err:
        log.warning("%s; evaluating again", err)
        return None
    return report if report.seeds == np.asarray(seeds).tolist() else None


def evaluation_seeds(seed: int, episodes: int) -> np.ndarray:
    """The episode seeds ``seed .. seed + episodes - 1`` (episodes,) int64 of an evaluation."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return np.arange(seed, seed + episodes, dtype=np.int64)


def evaluate_params(evaluator: Evaluator, params: np.ndarray, episodes: int, seed: int) -> EvaluationReport:
    """Run ``params`` (D,) for ``episodes`` episodes with seeds ``seed .. seed + episodes - 1``."""
    seeds = evaluation_seeds(seed, episodes)
    returns = evaluator(np.asarray(params, np.float32)[None], seeds)[0]  # (episodes,)
    return EvaluationReport.from_returns(returns, seeds)
