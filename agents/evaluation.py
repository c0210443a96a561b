"""Honest evaluation of one controller: every episode on its own seed, reported as mean +- std."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agents.evaluators import Evaluator
from rollouts.atomic import atomic_write_text


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

    def summary(self) -> str:
        return f"{self.mean:.1f} +- {self.std:.1f} over {self.episodes} episodes"

    def write_json(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")


def evaluate_params(evaluator: Evaluator, params: np.ndarray, episodes: int, seed: int) -> EvaluationReport:
    """Run ``params`` (D,) for ``episodes`` episodes with seeds ``seed .. seed + episodes - 1``."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    seeds = np.arange(seed, seed + episodes, dtype=np.int64)
    returns = evaluator(np.asarray(params, np.float32)[None], seeds)[0]  # (episodes,)
    return EvaluationReport(mean=float(returns.mean()), std=float(returns.std()), min=float(returns.min()),
                            max=float(returns.max()), episodes=episodes, returns=[float(r) for r in returns],
                            seeds=[int(s) for s in seeds])
