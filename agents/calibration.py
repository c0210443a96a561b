"""Is M's dream calibrated? Fixed controllers scored on the same seeds in the dream and in the real env.

CMA-ES in the dream only climbs dream returns, so it can be trusted as far as the dream ranks controllers the
way the real environment does. A controller whose dream return is far above its real one is an exploit of M
(Ha & Schmidhuber 2018, section 4.5). The controllers scored, each over the same ``episodes`` seeds:

- ``zeros``: every weight 0, the env's middle action at every step (stay, for Doom TakeCover);
- ``random N(0, s^2) #i``: ``random_per_scale`` controllers per weight scale s, weights drawn from ``seed``;
- any controllers given by file (by default the run's ``controller/mean.npy`` and ``best.npy``);
- ``dream search, N generations``: the mean solution of a CMA-ES search run ``trust.probe_generations`` (N)
  generations in this dream from where the run's search starts (``cmaes.init_params``, a row of its own named by its
  path, else zeros). The fixed controllers show whether the dream orders controllers as the real env does; this row
  shows whether a search climbs M's errors: what it gained over its start in the dream and did not gain for real is
  the exploit, if there is one.

The table (dream and real mean +- std, and their gap) goes to ``RUN/calibration.md`` and ``.json``, with
Spearman's rank correlation of the dream and real means; ``RUN/calibration.png`` plots real against dream;
``RUN/calibration_trust.json`` sums it up and judges it (``agents.dream_trust``). :func:`trust_before_evolving` is
``worldmodels run``'s check before it evolves C in the dream.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from agents.cmaes import evolve
from agents.dream_training import dream_spec
from agents.dream_trust import TrustSummary
from agents.evaluation import EvaluationReport, evaluation_seeds, file_sha256, same_provenance, score_provenance
from agents.evaluators import SerialEvaluator
from agents.real_env import real_evaluator
from rollouts.atomic import atomic_write_text
from worldmodels.config_schema import CALIBRATION_SCALES, Config, TrustConfig
from worldmodels.controller import load_params
from worldmodels.pictures import new_figure, save_figure
from worldmodels.real_rollouts import RealEnvWorkerSpec
from worldmodels.run_layout import (
    BEST_PARAMS_NAME,
    CALIBRATION_STEM,
    CALIBRATION_TRUST_NAME,
    CONTROLLER_DIR,
    MEAN_PARAMS_NAME,
)
from worldmodels.seeds import held_out_seeds

RUN_CONTROLLERS = (MEAN_PARAMS_NAME, BEST_PARAMS_NAME)

log = logging.getLogger(__name__)


@dataclass
class CalibrationRow:
    """One fixed controller's returns in the dream and in the real env, on the same seeds."""

    name: str
    dream: EvaluationReport
    real: EvaluationReport

    @property
    def gap(self) -> float:
        """Dream mean minus real mean: > 0 where M flatters the controller."""
        return self.dream.mean - self.real.mean


@dataclass
class Calibration:
    """Every row, the dream temperature they were scored at, and the dream-real rank correlation."""

    temperature: float
    rows: list[CalibrationRow]
    probe: tuple[str, str] | None = None
    """The names of the probe search's row and of its starting point's row; None without a probe."""

    @property
    def rank_correlation(self) -> float | None:
        """Spearman's rho of the rows' dream and real means (ties share their mean rank); None where it is
        undefined: fewer than 2 rows, or every dream mean (or every real mean) the same. Rounded to 12 decimals: rho is
        a ratio of small integers' sums, and a value such as 0.5 must not be judged below a threshold of 0.5 by the
        last bit of a floating-point correlation (it came out as 0.49999999999999994 for 5 controllers)."""
        dream, real = (np.array([getattr(row, side).mean for row in self.rows]) for side in ("dream", "real"))
        if len(self.rows) < 2 or np.ptp(dream) == 0 or np.ptp(real) == 0:
            return None
        return round(float(np.corrcoef(average_ranks(dream), average_ranks(real))[0, 1]), 12)

    def trust(self, settings: TrustConfig) -> TrustSummary:
        """The rank correlation and the largest dream - real gap, judged by ``settings``' thresholds.

        :raises ValueError: there are no rows.
        """
        episodes = self.rows[0].real.episodes if self.rows else 0
        return TrustSummary.measure([row.name for row in self.rows], [row.dream.mean for row in self.rows],
                                    [row.real.mean for row in self.rows], self.rank_correlation, episodes,
                                    self.temperature, settings, self.probe_gains)

    @property
    def probe_gains(self) -> tuple[float, float] | None:
        """The probe search's mean minus its starting point's mean, in the dream and for real; None without a probe.

        :raises ValueError: a ``probe`` row is not among the rows.
        """
        if self.probe is None:
            return None
        rows = {row.name: row for row in self.rows}
        if missing := [name for name in self.probe if name not in rows]:
            raise ValueError(f"probe rows {missing} are not among the controllers {list(rows)}")
        searched, start = (rows[name] for name in self.probe)
        return searched.dream.mean - start.dream.mean, searched.real.mean - start.real.mean

    def describe_rank_correlation(self) -> str:
        rho = self.rank_correlation
        return "undefined (fewer than 2 controllers, or equal means)" if rho is None else f"{rho:.2f}"


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..N of ``values`` (N,), tied values sharing the mean of their ranks (N,) float64."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, groups = np.unique(values, return_inverse=True)
    return np.bincount(groups, weights=ranks)[groups] / np.bincount(groups)[groups]


def fixed_controllers(num_params: int, scales: tuple[float, ...] = CALIBRATION_SCALES, random_per_scale: int = 2,
                      seed: int = 0, files: list[Path] | None = None) -> dict[str, np.ndarray]:
    """Name -> parameters (num_params,) float32: zeros, the random draws, then each file (named by its path).

    :raises ValueError: a file's parameter count differs from ``num_params``, or a scale is not > 0.
    """
    if any(scale <= 0 for scale in scales):
        raise ValueError(f"weight scales must be > 0, got {list(scales)}")
    rng = np.random.default_rng(seed)
    controllers = {"zeros": np.zeros(num_params, np.float32)}
    for scale in scales:
        for i in range(random_per_scale):
            controllers[f"random N(0, {scale:g}^2) #{i}"] = rng.normal(0.0, scale, num_params).astype(np.float32)
    for file in files or []:
        controllers[str(file)] = load_params(file, num_params)
    return controllers


def run_controller_files(run_dir: Path) -> list[Path]:
    """The run's evolved controllers that exist: RUN/controller/mean.npy and best.npy."""
    return [path for name in RUN_CONTROLLERS if (path := run_dir / CONTROLLER_DIR / name).is_file()]


def calibrate(config: Config, run_dir: str | Path, data_dir: str | Path, episodes: int,
              scales: tuple[float, ...] = CALIBRATION_SCALES, random_per_scale: int = 2,
              files: list[Path] | None = None) -> Calibration:
    """Score the fixed controllers (see the module docstring) over seeds ``trust.seed ..`` in the dream at
    ``dream.temperature`` and in the real env (Ray must be initialised); writes RUN/calibration.md, .json
    and .png, and the trust summary (judged by ``config.trust``) to RUN/calibration_trust.json. ``files`` None
    means the run's own controllers.

    :raises FileNotFoundError: V or M is missing from ``run_dir``.
    """
    run_dir = Path(run_dir)
    dream = SerialEvaluator(dream_spec(config, run_dir, Path(data_dir)))
    controllers = fixed_controllers(dream.worker.num_params, scales, random_per_scale, config.cmaes.seed,
                                    run_controller_files(run_dir) if files is None else files)
    probe = None
    if (generations := config.trust.probe_generations) > 0:
        start = "zeros" if config.cmaes.init_params is None else str(config.cmaes.init_params)
        if start not in controllers:
            controllers[start] = load_params(Path(start), dream.worker.num_params)
        probe = (probe_name(generations), start)
        controllers[probe[0]] = dream_search_probe(dream, config, generations)
    params = np.stack(list(controllers.values()))  # (P, D)
    seeds = evaluation_seeds(config.trust.seed, episodes)
    real = real_evaluator(config, RealEnvWorkerSpec.for_run(config, run_dir), progress="calibrate (real env)")
    try:
        real_returns = real(params, seeds)  # (P, E): every controller in one batch over the Ray workers
    finally:
        real.close()
    dream_returns = dream(params, seeds)  # (P, E)
    rows = [CalibrationRow(name, EvaluationReport.from_returns(dream_returns[i], seeds),
                           EvaluationReport.from_returns(real_returns[i], seeds))
            for i, name in enumerate(controllers)]
    calibration = Calibration(config.dream.temperature, rows, probe)
    write_calibration(calibration, run_dir / CALIBRATION_STEM)
    summary = replace(calibration.trust(config.trust), provenance=trust_provenance(config, run_dir, Path(data_dir)))
    summary.write_json(run_dir / CALIBRATION_TRUST_NAME)
    return calibration


def probe_name(generations: int) -> str:
    """The calibration row of the probe search's mean solution."""
    return f"dream search, {generations} generations"


def dream_search_probe(dream: SerialEvaluator, config: Config, generations: int) -> np.ndarray:
    """The mean solution (D,) float32 of CMA-ES run ``generations`` generations in ``dream``, with ``config.cmaes``'
    starting point, population, rollouts, sigma0, L2 coefficient and seed (its rollout seeds avoid the held-out
    ones), its state kept in a temporary folder: nothing of it is resumed or left behind."""
    settings = replace(config.cmaes, generations=generations, eval_every=generations + 1)  # no evaluation of the mean
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="worldmodels-probe-") as folder:
        out = Path(folder) / CONTROLLER_DIR
        records = evolve(dream, dream.worker.num_params, settings, out, held_out_seeds=held_out_seeds(config))
        mean = load_params(out / MEAN_PARAMS_NAME, dream.worker.num_params)
    log.info("probe: %d generations of dream search in %.1f s, last fitness mean %.1f", generations,
             time.perf_counter() - began, records[-1].mean_fitness)
    return mean


def trust_provenance(config: Config, run_dir: Path, data_dir: Path) -> dict[str, Any]:
    """What a trust summary of ``run_dir``'s dream, started from ``data_dir``'s episodes, rests on besides its
    thresholds: the SHA-256 of V, of every M member the dream steps and of the start latents, the env, controller and
    dream settings (:func:`agents.evaluation.score_provenance` in the dream, no controller weights), and the first
    episode seed ``trust.seed``."""
    provenance = score_provenance(config, run_dir, None, dream_data=data_dir)
    provenance["settings"]["trust_seed"] = config.trust.seed
    if config.trust.probe_generations > 0:
        cmaes = config.cmaes
        provenance["settings"]["trust_probe"] = {
            "generations": config.trust.probe_generations, "popsize": cmaes.popsize, "rollouts": cmaes.rollouts,
            "sigma0": cmaes.sigma0, "l2_coef": cmaes.l2_coef, "seed": cmaes.seed,
            "start": None if cmaes.init_params is None else file_sha256(Path(cmaes.init_params))}
    return provenance


def trust_before_evolving(config: Config, run_dir: Path, data_dir: Path) -> tuple[TrustSummary, bool]:
    """The trust summary of ``run_dir``'s M (judged by ``config.trust``) and whether it was reused:
    RUN/calibration_trust.json when it scored this V and these M members from ``data_dir``'s start latents with
    these settings (:func:`trust_provenance`) over ``trust.episodes`` episodes or more, else a calibration of the
    fixed controllers alone (``trust.episodes``, ``trust.random_per_scale``; not the run's own, so a resumed run
    scores the same ones). Ray must be initialised.
    """
    path = run_dir / CALIBRATION_TRUST_NAME
    if (summary := _reusable_summary(path, config, run_dir, data_dir)) is not None:
        return summary.judged_by(config.trust), True
    calibration = calibrate(config, run_dir, data_dir, config.trust.episodes,
                            random_per_scale=config.trust.random_per_scale, files=[])
    return calibration.trust(config.trust), False


def _reusable_summary(path: Path, config: Config, run_dir: Path, data_dir: Path) -> TrustSummary | None:
    """The summary at ``path`` when :func:`trust_before_evolving` may reuse it; else None, with the reason logged."""
    if not path.is_file():
        return None
    try:
        summary = TrustSummary.read_json(path)
    except ValueError as err:
        log.warning("%s; calibrating again", err)
        return None
    if not same_provenance(path, summary.provenance, trust_provenance(config, run_dir, data_dir),
                           "calibrating again"):
        return None
    if summary.episodes < config.trust.episodes:
        log.info("%s scored %d episodes per controller, fewer than trust.episodes=%d; calibrating again", path,
                 summary.episodes, config.trust.episodes)
        return None
    return summary


def markdown_table(calibration: Calibration) -> str:
    """Controller, dream score, real score (mean +- std), dream - real; then the rank correlation."""
    lines = ["| controller | dream score | real score | dream - real |", "|---|---|---|---|"]
    lines += [f"| {row.name} | {row.dream.mean:.1f} +- {row.dream.std:.1f} | {row.real.mean:.1f} +- "
              f"{row.real.std:.1f} | {row.gap:+.1f} |" for row in calibration.rows]
    if calibration.rows:
        first = calibration.rows[0].real
        lines.append(f"\nMean +- std over {first.episodes} episodes each (seeds {first.seeds[0]} and up), dream at "
                     f"temperature {calibration.temperature:g}. Spearman rank correlation of dream and real means: "
                     f"{calibration.describe_rank_correlation()}.")
    if calibration.probe is not None and (gains := calibration.probe_gains) is not None:
        searched, start = calibration.probe
        lines.append(f"The '{searched}' row started from '{start}': it gained {gains[0]:+.1f} in the dream and "
                     f"{gains[1]:+.1f} for real.")
    return "\n".join(lines) + "\n"


def write_calibration(calibration: Calibration, stem: Path) -> None:
    """``stem``.md (the table), ``stem``.json (every return and seed) and ``stem``.png, atomically."""
    atomic_write_text(stem.with_suffix(".md"), markdown_table(calibration))
    document = {"temperature": calibration.temperature, "rank_correlation": calibration.rank_correlation,
                "probe": calibration.probe, "rows": [asdict(row) | {"gap": row.gap} for row in calibration.rows]}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(document, indent=2) + "\n")
    plot_calibration(calibration, stem.with_suffix(".png"))


def plot_calibration(calibration: Calibration, png_path: Path) -> None:
    """Real mean against dream mean (+- std bars) per controller, with the calibrated line real = dream."""
    figure, axes = new_figure(height=4.5)
    for row in calibration.rows:
        axes.errorbar(row.dream.mean, row.real.mean, xerr=row.dream.std, yerr=row.real.std, fmt="o", capsize=3,
                      label=row.name)
    top = max([max(row.dream.mean + row.dream.std, row.real.mean + row.real.std) for row in calibration.rows] + [1])
    axes.plot([0, top], [0, top], color="gray", linestyle="--", label="calibrated: real = dream")
    axes.set_xlabel(f"dream return (temperature {calibration.temperature:g})")
    axes.set_ylabel("real return")
    axes.set_title(f"Dream vs real, rank correlation {calibration.describe_rank_correlation()}")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="x-small")
    save_figure(figure, png_path)
