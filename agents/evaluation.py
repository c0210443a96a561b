"""Honest evaluation of one controller: every episode on its own seed, reported as mean +- std."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluators import Evaluator
from rollouts.atomic import atomic_write_text
from worldmodels.config import config_to_dict
from worldmodels.config_schema import Config
from worldmodels.dream import start_latents_digest
from worldmodels.run_layout import MDNRNN_CHECKPOINT_NAME, VAE_CHECKPOINT_NAME, mdnrnn_member_checkpoints

log = logging.getLogger(__name__)

DREAM_STARTS_KEY = "dream start latents"
"""The key, among a dream score's provenance ``files``, of the digest of the latents its dreams start from."""


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
    provenance: dict[str, Any] | None = None
    """What else the returns depend on (:func:`score_provenance`): the weights' and checkpoints' SHA-256 and the
    settings; None when not recorded (reports of earlier versions, or of a bare :func:`evaluate_params`)."""

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

    def worst(self, count: int) -> list[tuple[int, float]]:
        """The ``count`` lowest-return episodes as (seed, return), lowest first (ties in seed order)."""
        order = sorted(range(self.episodes), key=lambda i: (self.returns[i], self.seeds[i]))
        return [(self.seeds[i], self.returns[i]) for i in order[:count]]

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
        if report.provenance is not None and not (isinstance(report.provenance, dict) and all(
                isinstance(report.provenance.get(part), dict) for part in ("files", "settings"))):
            raise ValueError(f"{path} is not an evaluation report: its provenance is not a mapping of files and "
                             f"settings ({report.provenance!r:.80})")
        return report


def score_provenance(config: Config, run_dir: Path, params_path: Path | None, dream_data: Path | None = None
                     ) -> dict[str, Any]:
    """What a controller's score depends on besides its episode seeds, in JSON types as a report stores it.

    ``files``: the SHA-256 of the controller's weights at ``params_path`` ("controller"; none when it is None, for
    scores of many controllers) and of the run's V and M checkpoints that exist (by their path in ``run_dir``). For a
    score in the dream (``dream_data``: the episode folder the dreams start from), every M member the dream steps, and
    the start latents' digest (``DREAM_STARTS_KEY``, :func:`worldmodels.dream.start_latents_digest`). ``settings``:
    the config sections ``env`` and ``controller``, and ``dream`` for a dream score.

    :raises rollouts.storage.EpisodeFileError: ``dream_data`` has an episode without latents.
    """
    checkpoints = [run_dir / VAE_CHECKPOINT_NAME, run_dir / MDNRNN_CHECKPOINT_NAME]
    if dream_data is not None:
        checkpoints[1:] = mdnrnn_member_checkpoints(run_dir, config.dream.members)
    files = {} if params_path is None else {"controller": file_sha256(params_path)}
    files |= {path.relative_to(run_dir).as_posix(): file_sha256(path) for path in checkpoints if path.is_file()}
    if dream_data is not None:
        files[DREAM_STARTS_KEY] = start_latents_digest(dream_data, config.dream.start_episodes)
    sections = ["env", "controller", *(["dream"] if dream_data is not None else [])]
    everything = config_to_dict(config)
    settings = json.loads(json.dumps({name: everything[name] for name in sections}))
    return {"files": files, "settings": settings}


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def reusable_report(report_path: Path, seeds: np.ndarray, provenance: dict[str, Any]) -> EvaluationReport | None:
    """The report at ``report_path`` when it ran on ``seeds`` (E,) with this ``provenance`` (:func:`score_provenance`:
    the same controller weights, V and M files and settings); else None, so that the caller scores again. A report
    that cannot be read, or that records no provenance, is logged and not reused."""
    if not report_path.is_file():
        return None
    try:
        report = EvaluationReport.read_json(report_path)
    except ValueError as err:
        log.warning("%s; evaluating again", err)
        return None
    if report.seeds != np.asarray(seeds).tolist():
        return None
    return report if same_provenance(report_path, report.provenance, provenance, "evaluating again") else None


def same_provenance(path: Path, stored: dict[str, Any] | None, current: dict[str, Any], again: str) -> bool:
    """Whether the record read from ``path`` scored what ``current`` describes (:func:`score_provenance` records);
    when not, logs why, ending with ``again`` (what the caller does instead). ``stored`` None: the record says
    nothing of what it scored (an earlier version wrote it). A part missing from ``stored`` counts as empty."""
    if stored is None:
        log.info("%s does not record what it scored (written by an earlier version); %s", path, again)
        return False
    if changed := provenance_differences(stored, current):
        log.info("%s scored another %s; %s", path, ", ".join(changed), again)
    return not changed


def provenance_differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """The parts in which two :func:`score_provenance` records differ, as "files NAME" or "settings SECTION", sorted
    within each part; a part missing from a record counts as empty."""
    return [f"{part} {key}" for part in ("files", "settings")
            for key in sorted(set(first.get(part, {})) | set(second.get(part, {})))
            if first.get(part, {}).get(key) != second.get(part, {}).get(key)]


@dataclass(frozen=True)
class PairedComparison:
    """Two controllers' returns on the same episode seeds, differenced seed by seed: on CarRacing the track, on Doom
    the fireball schedule, is shared, so the paired standard error is smaller than the two means' spreads suggest."""

    mean_difference: float
    """Mean of first - second over the seeds (returns)."""
    standard_error: float
    """Of ``mean_difference``: the differences' sample std (ddof=1) over sqrt(episodes)."""
    episodes: int
    first_higher: int
    """Seeds on which the first controller scored more than the second."""
    differences: list[str] | None
    """What the two scores rest on that differs (:func:`provenance_differences`); None where a report records no
    provenance."""

    @classmethod
    def of(cls, first: EvaluationReport, second: EvaluationReport) -> PairedComparison:
        """``first`` - ``second``, seed by seed.

        :raises ValueError: the reports ran on different seeds (or in another order), or on fewer than 2.
        """
        if first.seeds != second.seeds:
            raise ValueError(f"the reports ran on different seeds ({_seed_range(first.seeds)} and "
                             f"{_seed_range(second.seeds)}): score both with the same evaluate.seed and episodes")
        if first.episodes < 2:
            raise ValueError(f"a paired standard error needs at least 2 episodes, the reports have {first.episodes}")
        differences = np.asarray(first.returns) - np.asarray(second.returns)  # (E,)
        provenance = (None if first.provenance is None or second.provenance is None
                      else provenance_differences(first.provenance, second.provenance))
        return cls(float(differences.mean()), float(differences.std(ddof=1) / np.sqrt(first.episodes)),
                   first.episodes, int((differences > 0).sum()), provenance)

    def describe(self) -> str:
        """The difference, its standard error, and on how many seeds the first scored higher."""
        ratio = (f", {self.mean_difference / self.standard_error:+.1f} standard errors" if self.standard_error > 0
                 else "")
        return (f"first - second, paired by seed: {self.mean_difference:+.1f} (standard error "
                f"{self.standard_error:.1f}{ratio}; the first higher on {self.first_higher} of {self.episodes} seeds)")


def _seed_range(seeds: list[int]) -> str:
    return f"{len(seeds)} seeds from {seeds[0]}" if seeds else "no seeds"


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
