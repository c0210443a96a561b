"""Can M's dream be trusted? A calibration (``agents.calibration``) summed up in two numbers and judged.

CMA-ES in the dream climbs dream returns, so the dream is trusted when it orders fixed controllers as the real env
does (Spearman's rank correlation of their dream and real means at least ``trust.min_rank_correlation``),
flatters none of them, nor the mean of a short dream search (the probe, ``trust.probe_generations``), by more than
the controllers differ for real (the largest dream - real gap at most ``trust.max_gap_fraction`` times the real
spread, best minus worst real mean), and what the probe gained over its starting point in the dream shows up in the
real env (at least ``trust.min_probe_transfer`` of it). Written to ``RUN/calibration_trust.json`` beside the
calibration table.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from rollouts.atomic import atomic_write_text
from worldmodels.config_schema import TrustConfig

TrustVerdict = Literal["trusted", "untrusted", "unjudged"]
"""untrusted: a threshold failed; unjudged: none failed but the rank correlation is undefined (every dream mean or
every real mean the same)."""


@dataclass(frozen=True)
class TrustSummary:
    """A calibration's rank correlation and largest gap (returns, as the env scores them), and the thresholds
    they are judged by; the verdict follows from these fields."""

    rank_correlation: float | None
    """Spearman's rho of the controllers' dream and real means; None where undefined."""
    controllers: int
    """Controllers scored: the fixed ones, and the probe search's mean where there is one."""
    episodes: int
    """Episodes per controller in each env, on the same seeds."""
    temperature: float
    """The dream's tau."""
    largest_gap: float
    """The largest dream mean - real mean over the controllers (> 0: M flatters that controller)."""
    largest_gap_controller: str
    """The controller of ``largest_gap``."""
    real_spread: float
    """Best minus worst real mean over the controllers."""
    min_rank_correlation: float
    max_gap_fraction: float
    """The thresholds (``trust`` settings) the verdict uses."""
    probe_dream_gain: float | None = None
    probe_real_gain: float | None = None
    """The probe search's mean minus its starting point's mean, in the dream and in the real env; None without a
    probe."""
    min_probe_transfer: float = TrustConfig.min_probe_transfer
    """The threshold on ``probe_real_gain / probe_dream_gain``."""
    provenance: dict[str, Any] | None = None
    """What was scored besides the thresholds (:func:`agents.calibration.trust_provenance`: the SHA-256 of V, of
    every M the dream steps and of the start latents, the settings, the first seed); None where a summary does not
    record it."""

    @classmethod
    def measure(cls, names: list[str], dream_means: list[float], real_means: list[float],
                rank_correlation: float | None, episodes: int, temperature: float,
                settings: TrustConfig, probe_gains: tuple[float, float] | None = None) -> TrustSummary:
        """The summary of controllers ``names`` with these means (one per name), judged by ``settings``;
        ``probe_gains``: the probe search's mean minus its starting point's, in the dream and for real.

        :raises ValueError: no controllers, or a list of means whose length differs from ``names``.
        """
        if not names or len(dream_means) != len(names) or len(real_means) != len(names):
            raise ValueError(f"one dream and one real mean per controller needed, got {len(names)} controllers, "
                             f"{len(dream_means)} dream and {len(real_means)} real means")
        gaps = [dream - real for dream, real in zip(dream_means, real_means)]
        worst = max(range(len(gaps)), key=gaps.__getitem__)
        return cls(rank_correlation, len(names), episodes, temperature, gaps[worst], names[worst],
                   max(real_means) - min(real_means), settings.min_rank_correlation, settings.max_gap_fraction,
                   *(probe_gains or (None, None)), settings.min_probe_transfer)

    def judged_by(self, settings: TrustConfig) -> TrustSummary:
        """The same measurements under ``settings``' thresholds."""
        return replace(self, min_rank_correlation=settings.min_rank_correlation,
                       max_gap_fraction=settings.max_gap_fraction, min_probe_transfer=settings.min_probe_transfer)

    @property
    def reasons(self) -> list[str]:
        """Each failed threshold, in words; empty when none failed."""
        reasons = []
        if self.rank_correlation is not None and self.rank_correlation < self.min_rank_correlation:
            reasons.append(f"rank correlation {self.rank_correlation:.3f} < {self.min_rank_correlation:g}")
        if self.real_spread > 0 and self.largest_gap > self.max_gap_fraction * self.real_spread:
            reasons.append(f"'{self.largest_gap_controller}' scores {self.largest_gap:+.1f} more in the dream, over "
                           f"{self.max_gap_fraction:g} x the real spread {self.real_spread:.1f}")
        if self.probe_judged and self.probe_real_gain < self.min_probe_transfer * self.probe_dream_gain:
            reasons.append(f"the dream search's mean gained {self.probe_dream_gain:+.1f} in the dream but "
                           f"{self.probe_real_gain:+.1f} for real, under {self.min_probe_transfer:g} x the dream's "
                           "gain")
        return reasons

    @property
    def probe_judged(self) -> bool:
        """Whether the probe's transfer is judged: there is a probe and it gained in the dream."""
        return self.probe_dream_gain is not None and self.probe_real_gain is not None and self.probe_dream_gain > 0

    @property
    def verdict(self) -> TrustVerdict:
        if self.reasons:
            return "untrusted"
        return "unjudged" if self.rank_correlation is None else "trusted"

    def describe(self) -> list[str]:
        """The verdict and what it rests on, the rank correlation, the largest gap and, with a probe, its gains."""
        rho = "undefined (equal means)" if self.rank_correlation is None else f"{self.rank_correlation:.3f}"
        lines = [f"dream trust: {self.verdict} ({self.controllers} controllers x {self.episodes} episodes, "
                 f"dream at temperature {self.temperature:g})",
                 f"  rank correlation of dream and real means: {rho} (trusted from {self.min_rank_correlation:g})",
                 f"  largest dream - real gap: {self.largest_gap:+.1f} ('{self.largest_gap_controller}'); real spread "
                 f"{self.real_spread:.1f} (trusted up to {self.max_gap_fraction:g} x it)"]
        if self.probe_dream_gain is not None and self.probe_real_gain is not None:
            judged = (f"trusted from {self.min_probe_transfer:g} x the dream's gain" if self.probe_judged
                      else "not judged: no gain in the dream")
            lines.append(f"  dream search's gain over its start: {self.probe_dream_gain:+.1f} in the dream, "
                         f"{self.probe_real_gain:+.1f} for real ({judged})")
        return lines

    def warning(self) -> str | None:
        """One line when the dream is not to be trusted or cannot be judged; None when it is trusted."""
        if self.verdict == "untrusted":
            return (f"WARNING: the dream is not to be trusted ({'; '.join(self.reasons)}): CMA-ES may climb M's "
                    "errors; `worldmodels calibrate` shows the table")
        if self.verdict == "unjudged":
            return ("WARNING: the dream's trust cannot be judged: every dream or every real mean is the same "
                    "(more episodes or a longer episode cap may separate them)")
        return None

    def write_json(self, path: Path) -> None:
        """The fields, the verdict and its reasons, atomically."""
        document = asdict(self) | {"verdict": self.verdict, "reasons": self.reasons}
        atomic_write_text(path, json.dumps(document, indent=2) + "\n")

    @classmethod
    def read_json(cls, path: Path) -> TrustSummary:
        """A summary written by :meth:`write_json` (its verdict is recomputed from the fields).

        :raises ValueError: the file is not such a summary (the message names it).
        """
        try:
            document = json.loads(path.read_text())
            summary = cls(**{field.name: document[field.name] if field.default is MISSING
                             else document.get(field.name, field.default) for field in fields(cls)})
            numbers = [summary.largest_gap, summary.real_spread, summary.temperature]
            numbers += [gain for gain in (summary.probe_dream_gain, summary.probe_real_gain) if gain is not None]
            valid = all(isinstance(x, (int, float)) and math.isfinite(x) for x in numbers)
            valid &= isinstance(summary.min_probe_transfer, (int, float)) and not math.isnan(summary.min_probe_transfer)
            valid &= summary.provenance is None or isinstance(summary.provenance, dict)
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{path} is not a dream trust summary ({type(err).__name__}: {err})") from None
        if not valid:
            raise ValueError(f"{path} is not a dream trust summary: a non-numeric or non-finite gap, spread, "
                             "temperature or probe gain, a threshold that is not a number, or a provenance that is "
                             "not an object")
        return summary
