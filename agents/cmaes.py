"""CMA-ES over controller parameters: pycma's ask/tell, a pluggable evaluator, checkpoints every generation.

Fitness (maximised) of a candidate w (D,) with returns G (R,) over its R rollouts:

    fitness = mean(G) - l2_coef * mean(w ** 2)

the authors' ``compute_weight_decay`` (es.py); pycma minimises, so it is told -fitness.

Generation g's R episode seeds are drawn from ``SeedSequence([seed, g])`` and shared by every candidate
(common random numbers); the seeds of one candidate are distinct. The mean solution's evaluation every
``eval_every`` generations uses seeds from ``SeedSequence([seed, g, 1])``. Seeds in ``held_out_seeds`` (the
evaluation and calibration seeds, :func:`worldmodels.seeds.held_out_seeds`) are never drawn: a draw that lands
there is replaced by the generator's next draw, so a search that never hit them keeps its seeds.

Run folder (``out_dir``), all written atomically after every generation:

    cmaes_state.npz   the search as plain numbers (read with ``allow_pickle=False``): the fitness of every
                      candidate of every generation (G, P), the popsize, sigma0, seed and parameter count it
                      was made with, the best candidate and its fitness, pycma's mean and sigma as a check
    best.npy          the best candidate seen so far (D,) float32 (of the current phase, see below)
    mean.npy          the distribution mean (D,) float32, the solution to deploy
    log.csv           generation, best/mean/worst fitness, sigma, seconds, retried, env_steps (real-env steps
                      of the generation's rollouts; 0 in a dream), eval_env_steps (real-env steps of the mean
                      solution's evaluations after it; 0 without one), dream_steps (dream steps of the
                      generation's rollouts and of the mean solution's dream evaluations; 0 in the real env)
    eval.csv          generation, env, mean/std/min/max return of the mean solution, episodes, env_steps_total
                      (real-env steps of the whole search up to this row, this evaluation's included); one row
                      per evaluation env (``real`` when training in the real env, ``dream`` and ``real`` when
                      training in a dream; ``train`` when :func:`evolve` is given no ``evaluations``)

Every real step counts: a run's real-env steps are the sum over log.csv of env_steps and eval_env_steps
(:func:`real_env_steps`); its dream steps are the sum of dream_steps (:func:`dream_steps`). Steps of a chunk of
rollouts lost with a dead Ray worker are not counted (its redone chunk is). Files written by older versions, without
these columns, resume: their rows read as 0 evaluation and dream steps and a blank env_steps_total.

A search may change evaluators once (``then``, a :class:`Phase`): generations from ``then.start`` on evaluate
candidates and the mean solution there instead, the same pycma strategy going on (``controller.train_in``
``dream_then_real``: the dream first, then the real env). Fitness in one phase is not comparable with fitness in
the other, so best.npy starts afresh at the switch.

and, beside it, ``../tensorboard/<out_dir's name>/`` (RUN/tensorboard/controller for RUN/controller): TensorBoard
scalars ``cmaes/<name>`` per generation (:func:`_generation_scalars`; :mod:`worldmodels.tensorboard`).

Restarted with the same ``out_dir`` the run resumes after the last finished generation and continues
exactly as an uninterrupted run would (log rows past it, written before a crash, are dropped). pycma's
strategy is not stored but rebuilt: pycma samples from a generator of its own (:func:`make_strategy`), so
its state is a function of the settings and the fitness values it was told, and resuming makes it afresh
and replays ask/tell with the stored values (:func:`replay`). That costs pycma's own time per generation:
at 867 parameters and popsize 64 about 42 ms of CPU (one BLAS thread), so resuming after 1,800 generations
replays them in about 75 s. A run folder holding ``cmaes_state.pkl`` (older versions pickled pycma's
strategy) is refused: unpickling a shared file can run code.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluators import Evaluator
from rollouts.atomic import atomic_path, atomic_write_text
from worldmodels.config_schema import CMAESConfig
from worldmodels.controller import load_params
from worldmodels.run_layout import (
    BEST_PARAMS_NAME,
    CMAES_EVAL_NAME,
    CMAES_LEGACY_STATE_NAME,
    CMAES_LOG_NAME,
    CMAES_STATE_NAME,
    MEAN_PARAMS_NAME,
)
from worldmodels.tensorboard import ScalarLog, event_dir

with warnings.catch_warnings():  # pycma warns on import when matplotlib (only for its plots) is absent
    warnings.filterwarnings("ignore", message="Could not import matplotlib")
    import cma

log = logging.getLogger(__name__)

STATE_FORMAT = 2
"""Format 2 stores the search's starting point ``x0``; format 1 (no ``x0``: the zero vector) is still read."""
LOG_COLUMNS = ("generation", "best_fitness", "mean_fitness", "worst_fitness", "sigma", "seconds", "retried",
               "env_steps", "eval_env_steps", "dream_steps")
EVAL_COLUMNS = ("generation", "env", "mean_return", "std_return", "min_return", "max_return", "episodes",
                "env_steps_total")


@dataclass
class GenerationRecord:
    """One generation's log row."""

    generation: int
    best_fitness: float
    mean_fitness: float
    worst_fitness: float
    sigma: float
    seconds: float
    retried: int
    env_steps: int
    """Real-environment steps this generation's rollouts took (0 in a dream; evaluations not counted)."""
    eval_env_steps: int = 0
    """Real-environment steps of the mean solution's evaluations after this generation (0 without one)."""
    dream_steps: int = 0
    """Dream steps of this generation's rollouts and of the mean solution's dream evaluations after it (0 in the
    real env)."""
    evaluations: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    """Evaluations of the mean solution after this generation: env -> (mean, std, episodes) of its returns."""

    def describe(self) -> str:
        evaluations = "".join(f"; mean solution in {env}: {mean:.1f} +- {std:.1f} over {count}"
                              for env, (mean, std, count) in self.evaluations.items())
        return (f"generation {self.generation}: fitness best {self.best_fitness:.2f} mean {self.mean_fitness:.2f} "
                f"worst {self.worst_fitness:.2f}, sigma {self.sigma:.4f}, {self.seconds:.1f} s"
                + (f", {self.retried} chunks retried after a worker died" if self.retried else "") + evaluations)


@dataclass(frozen=True)
class Phase:
    """Where a search evaluates from generation ``start`` on: its candidates with ``evaluator``, its mean solution
    every ``eval_every`` generations with each of ``evaluations`` (by eval.csv ``env`` name)."""

    start: int
    evaluator: Evaluator
    evaluations: Mapping[str, Evaluator]


def fitness(candidates: np.ndarray, returns: np.ndarray, l2_coef: float) -> np.ndarray:
    """Fitness (P,) of candidates (P, D) with returns (P, R): mean return - l2_coef * mean(w^2)."""
    return returns.mean(axis=1) - l2_coef * np.mean(np.square(candidates), axis=1)


def generation_seeds(seed: int, generation: int, count: int, stream: int = 0,
                     held_out: Sequence[range] = ()) -> np.ndarray:
    """``count`` distinct episode seeds (count,) int64 in [0, 2^31) for a generation; stream 1 is for evaluations.

    None lies in a ``held_out`` range: such a draw is replaced by the next draw of the same generator that is new
    and not held out, so the seeds are a pure function of the arguments and equal the plain draw when it hits no
    held-out seed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, generation, stream]))
    seeds = rng.choice(2**31, size=count, replace=False).astype(np.int64)
    if sum(len(block) for block in held_out) > 2**30:
        raise ValueError(f"held-out seeds {held_out} cover more than half of [0, 2^31): nothing is left to train on")
    taken = set(seeds.tolist())
    for i in range(count):
        while any(int(seeds[i]) in block for block in held_out):
            value = int(rng.integers(2**31))
            if value not in taken:
                seeds[i] = value
                taken.add(value)
    return seeds


def initial_mean(num_params: int, settings: CMAESConfig) -> np.ndarray:
    """Where a search starts (D,) float64: the controller in ``settings.init_params``, else the zero vector.

    :raises FileNotFoundError: the file does not exist.
    :raises ValueError: it is not one finite float vector of ``num_params`` values (the message names the file).
    """
    if settings.init_params is None:
        return np.zeros(num_params)
    return load_params(settings.init_params, num_params).astype(np.float64)


def make_strategy(num_params: int, settings: CMAESConfig, x0: np.ndarray | None = None) -> cma.CMAEvolutionStrategy:
    """pycma's strategy from ``x0`` (D,) (None: the zero vector), quiet, writing no ``outcmaes/`` files, drawing its
    samples from a generator of its own seeded with ``settings.seed + 1``.

    The generator is ``RandomState(seed + 1)``, the stream pycma would use with option ``seed=seed + 1`` (its
    own + 1 avoids 0, which pycma reads as "seed from the clock"), so the candidates are plain pycma's; but
    pycma never touches numpy's global RNG, and with the options set here every random number it draws
    (samples, and the rescaled mirrors of small populations) comes from this generator. Its state is thus
    a function of the settings and the fitness values it was told (see :func:`replay`).
    """
    sampler = np.random.RandomState(settings.seed + 1)  # legacy stream: stable across numpy versions
    options = {"popsize": settings.popsize, "seed": np.nan, "randn": sampler.randn, "verbose": -9,
               "verb_log": 0, "verb_disp": 0, "verb_filenameprefix": "", "CMA_diagonal": False}
    return cma.CMAEvolutionStrategy(np.zeros(num_params) if x0 is None else np.array(x0, np.float64),
                                    settings.sigma0, options)


def step(es: cma.CMAEvolutionStrategy, score: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One generation of ask/tell: candidates (P, D) float64 from pycma, their fitness (P,) from ``score``.

    pycma is told -fitness (it minimises). The search and its replay on resume both go through here, so a
    replayed strategy is told exactly what the live one was.
    """
    candidates = np.asarray(es.ask(), np.float64)  # (P, D)
    scores = np.asarray(score(candidates), np.float64)  # (P,)
    es.tell(list(candidates), list(-scores))
    return candidates, scores


@dataclass
class SearchState:
    """What a run folder keeps of the search: the settings pycma was made with and every fitness it was told.

    pycma's strategy is rebuilt from these by :func:`replay`; ``mean`` and ``sigma`` check the rebuild.
    """

    fitness: np.ndarray
    """(G, P) float64: generation g's fitness of its P candidates, in pycma's order."""
    popsize: int
    sigma0: float
    seed: int
    num_params: int
    best: np.ndarray
    """(D,) float64: the best candidate seen so far."""
    best_fitness: float
    mean: np.ndarray
    """(D,) float64: pycma's mean after the last generation."""
    sigma: float
    """pycma's step size after the last generation."""
    x0: np.ndarray
    """(D,) float64: where the search started (``cmaes.init_params``, else the zero vector)."""

    @property
    def generation(self) -> int:
        """Generations done."""
        return len(self.fitness)


def save_state(path: Path, state: SearchState) -> None:
    """Write ``state`` atomically as an ``.npz`` of plain numbers (format :data:`STATE_FORMAT`)."""
    arrays = {"format": STATE_FORMAT, "generation": state.generation, "fitness": state.fitness,
              "popsize": state.popsize, "sigma0": state.sigma0, "seed": state.seed,
              "num_params": state.num_params, "best": state.best, "best_fitness": state.best_fitness,
              "mean": state.mean, "sigma": state.sigma, "x0": state.x0}
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        np.savez(file, allow_pickle=False, **{key: np.asarray(value) for key, value in arrays.items()})


def load_state(path: Path) -> SearchState:
    """Read a state file written by :func:`save_state`; numbers only (``allow_pickle=False``), nothing runs.

    :raises ValueError: naming the file when it is not such a file (corrupt, truncated, or crafted).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as err:  # noqa: BLE001 (np.load raises many types for bad files: BadZipFile, OSError, ...)
        raise _unreadable(path, f"{type(err).__name__}: {err}") from None
    if not _is_state(arrays):
        raise _unreadable(path, "it is not a CMA-ES state of format "
                                f"{STATE_FORMAT}: keys {sorted(arrays)}, or values of the wrong kind or shape")
    return SearchState(fitness=arrays["fitness"], popsize=int(arrays["popsize"]), sigma0=float(arrays["sigma0"]),
                       seed=int(arrays["seed"]), num_params=int(arrays["num_params"]), best=arrays["best"],
                       best_fitness=float(arrays["best_fitness"]), mean=arrays["mean"],
                       sigma=float(arrays["sigma"]), x0=arrays.get("x0", np.zeros(int(arrays["num_params"]))))


def _is_state(arrays: dict[str, np.ndarray]) -> bool:
    """Whether ``arrays`` hold every key of the format, each of the dtype kind and shape it must have."""
    kinds = {"format": "i", "generation": "i", "popsize": "i", "seed": "i", "num_params": "i", "sigma0": "f",
             "best_fitness": "f", "sigma": "f", "fitness": "f", "best": "f", "mean": "f", "x0": "f"}
    if "format" in arrays and isinstance(arrays["format"], np.ndarray) and arrays["format"].shape == ():
        if int(arrays["format"]) == 1:
            del kinds["x0"]  # format 1: the search started at the zero vector
        elif int(arrays["format"]) != STATE_FORMAT:
            return False
    if set(arrays) != set(kinds) or not all(isinstance(array, np.ndarray) for array in arrays.values()):
        return False  # a zip member not stored as .npy reads back as bytes
    if any(arrays[key].dtype.kind != kind for key, kind in kinds.items()):
        return False
    if any(arrays[key].shape != () for key in kinds if key not in ("fitness", "best", "mean", "x0")):
        return False
    if min(arrays["popsize"], arrays["num_params"]) < 1:
        return False
    num_params = int(arrays["num_params"])
    vectors = ("best", "mean", "x0") if "x0" in kinds else ("best", "mean")
    return (arrays["fitness"].shape == (int(arrays["generation"]), int(arrays["popsize"]))
            and all(arrays[key].shape == (num_params,) for key in vectors))


def _unreadable(path: Path, why: str) -> ValueError:
    return ValueError(f"CMA-ES state {path} is unreadable ({why}); move the folder {path.parent} away to start "
                      "the search from scratch, or use a new run folder")


def check_settings(path: Path, state: SearchState, num_params: int, settings: CMAESConfig) -> None:
    """Refuse a state made with other settings than the ones given, or started from another point than
    ``cmaes.init_params`` gives: its search cannot be rebuilt with them."""
    if state.num_params != num_params:
        raise ValueError(f"CMA-ES state {path} searches {state.num_params} parameters, the controller has "
                         f"{num_params}: use the settings of that run, or a new run folder")
    for name in ("popsize", "sigma0", "seed"):
        made, given = getattr(state, name), getattr(settings, name)
        if made != given:
            raise ValueError(f"CMA-ES state {path} was made with cmaes.{name} {made}, the settings have {given}: "
                             f"use the settings of that run (cmaes.{name}={made}), or a new run folder")
    if not np.array_equal(state.x0, initial_mean(num_params, settings)):
        began = "the zero vector" if not state.x0.any() else "other parameters"
        given = "the zero vector" if settings.init_params is None else f"{settings.init_params}"
        raise ValueError(f"CMA-ES state {path} started from {began}, the settings start from {given} "
                         f"(cmaes.init_params): use that run's starting point, or a new run folder")


def replay(state: SearchState, settings: CMAESConfig) -> cma.CMAEvolutionStrategy:
    """pycma's strategy after ``state.generation`` generations: made afresh and told the stored fitness values.

    ``settings`` are the run's, which :func:`check_settings` found to match the state's.

    On the machine and pycma version that wrote ``state`` the result is bit-equal to the strategy that wrote it;
    elsewhere rounding may differ, which is logged, and the search goes on from the replayed (valid) strategy.
    """
    es = make_strategy(state.num_params, settings, state.x0)
    for scores in state.fitness:
        step(es, lambda candidates, scores=scores: scores)
    difference = max(float(np.max(np.abs(es.mean - state.mean))), abs(float(es.sigma) - state.sigma))
    if difference != 0:
        log.warning("the replayed CMA-ES mean and sigma differ from the stored ones by up to %g (another pycma "
                    "version or CPU?); continuing from the replayed strategy", difference)
    return es


def generations_done(out_dir: str | Path) -> int:
    """Generations the CMA-ES run in ``out_dir`` has finished (0 when it has not started)."""
    path = Path(out_dir) / CMAES_STATE_NAME
    return load_state(path).generation if path.exists() else 0


def _legacy_state_error(path: Path) -> ValueError:
    return ValueError(f"{path} was written by an older version of this project; its CMA-ES state is a pickle, "
                      "which can run code, so it is not loaded: move the folder "
                      f"{path.parent} away to start the search from scratch, or use a new run folder")


def real_env_steps(out_dir: str | Path) -> int:
    """Real-environment steps the search in ``out_dir`` has taken: its rollouts' and its mean solution's
    evaluations' (log.csv; 0 when it has not started; rows of older versions count no evaluation steps)."""
    return _log_column_sum(out_dir, ("env_steps", "eval_env_steps"))


def dream_steps(out_dir: str | Path) -> int:
    """Dream steps the search in ``out_dir`` has taken, its rollouts' and its mean solution's dream evaluations'
    (log.csv; 0 when it has not started; rows of older versions, which did not count them, count 0)."""
    return _log_column_sum(out_dir, ("dream_steps",))


def _log_column_sum(out_dir: str | Path, columns: tuple[str, ...]) -> int:
    """The sum of integer ``columns`` over every row of ``out_dir``/log.csv (0 when there is no log; a blank or
    absent value, from an older version's file, counts 0)."""
    path = Path(out_dir) / CMAES_LOG_NAME
    if not path.exists():
        return 0
    with path.open() as file:
        return sum(int(row.get(column) or 0) for row in csv.DictReader(file) for column in columns)


def _keep_rows(path: Path, columns: tuple[str, ...], up_to: int) -> None:
    """Rewrite CSV ``path`` with a header and only the rows of generations < ``up_to`` (creates it if absent)."""
    rows = []
    if path.exists():
        rows = [r for r in csv.DictReader(path.open()) if int(r["generation"]) < up_to]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _append_row(path: Path, columns: tuple[str, ...], row: dict[str, Any]) -> None:
    """Add ``row`` to CSV ``path`` (which has its header), rewriting the file atomically."""
    buffer = io.StringIO()
    csv.DictWriter(buffer, fieldnames=columns).writerow(row)
    atomic_write_text(path, path.read_text() + buffer.getvalue())


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as file:
        np.save(file, np.asarray(array, np.float32))


def evolve(
    evaluator: Evaluator,
    num_params: int,
    settings: CMAESConfig,
    out_dir: str | Path,
    on_generation: Callable[[GenerationRecord], None] | None = None,
    stop_after: int | None = None,
    evaluations: Mapping[str, Evaluator] | None = None,
    then: Phase | None = None,
    held_out_seeds: Sequence[range] = (),
) -> list[GenerationRecord]:
    """Run (or resume) CMA-ES until ``settings.generations`` generations are done.

    :param evaluator: ``evaluator(candidates (P, D), seeds (R,)) -> returns (P, R)``.
    :param on_generation: called with each finished generation's record (the CLI prints it).
    :param stop_after: stop once this many generations are done in total (tests use it to interrupt).
    :param evaluations: where the mean solution is evaluated every ``eval_every`` generations, by name
        (the eval.csv ``env`` column); default ``{"train": evaluator}``.
    :param then: the evaluators of generations ``then.start`` and after, in place of ``evaluator`` and
        ``evaluations`` (the same search goes on).
    :param held_out_seeds: episode seeds never used, in rollouts or evaluations of the mean (the final
        evaluation's and calibration's: :func:`worldmodels.seeds.held_out_seeds`).
    :returns: the records of the generations run by this call.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    es, history, best, best_fitness, x0 = _start(out, num_params, settings)
    generation = len(history)
    _keep_rows(out / CMAES_LOG_NAME, LOG_COLUMNS, generation)
    _keep_rows(out / CMAES_EVAL_NAME, EVAL_COLUMNS, generation)
    steps_total = real_env_steps(out)
    phases = [Phase(0, evaluator, evaluations or {"train": evaluator}), *([then] if then is not None else [])]
    last = settings.generations if stop_after is None else min(stop_after, settings.generations)
    records = []
    with ScalarLog(event_dir(out.parent, out.name), "cmaes", first_step=generation) as scalars:
        while generation < last:
            start = time.perf_counter()
            phase = [phase for phase in phases if phase.start <= generation][-1]
            if generation == phase.start > 0:  # fitness of another evaluator: the best starts afresh
                best, best_fitness = np.full(num_params, np.nan), -np.inf
            rollouts = phase.evaluator
            retried_before, steps_before, dream_before = rollouts.retried, rollouts.env_steps, _dream_steps(rollouts)
            seeds = generation_seeds(settings.seed, generation, settings.rollouts, held_out=held_out_seeds)  # (R,)
            candidates, scores = step(  # (P, D), (P,)
                es, lambda candidates, seeds=seeds: fitness(candidates, rollouts(candidates.astype(np.float32), seeds),
                                                            settings.l2_coef))
            history.append(scores)
            if scores.max() > best_fitness:
                best, best_fitness = candidates[scores.argmax()].copy(), float(scores.max())
            record = GenerationRecord(generation, float(scores.max()), float(scores.mean()), float(scores.min()),
                                      float(es.sigma), time.perf_counter() - start, rollouts.retried - retried_before,
                                      rollouts.env_steps - steps_before,
                                      dream_steps=_dream_steps(rollouts) - dream_before)
            steps_total += record.env_steps
            generation += 1
            if generation % settings.eval_every == 0:
                for name, mean_evaluator in phase.evaluations.items():
                    steps_before, dream_before = mean_evaluator.env_steps, _dream_steps(mean_evaluator)
                    returns = _evaluate_mean(mean_evaluator, es.mean, settings, record.generation, held_out_seeds)
                    record.dream_steps += _dream_steps(mean_evaluator) - dream_before
                    record.eval_env_steps += mean_evaluator.env_steps - steps_before
                    steps_total += mean_evaluator.env_steps - steps_before
                    _append_row(out / CMAES_EVAL_NAME, EVAL_COLUMNS, {
                        "generation": record.generation, "env": name, "mean_return": returns.mean(),
                        "std_return": returns.std(), "min_return": returns.min(), "max_return": returns.max(),
                        "episodes": len(returns), "env_steps_total": steps_total})
                    record.evaluations[name] = (float(returns.mean()), float(returns.std()), len(returns))
            _save_npy(out / MEAN_PARAMS_NAME, es.mean)
            _save_npy(out / BEST_PARAMS_NAME, best)
            _append_row(out / CMAES_LOG_NAME, LOG_COLUMNS, {name: getattr(record, name) for name in LOG_COLUMNS})
            save_state(out / CMAES_STATE_NAME, SearchState(np.stack(history), settings.popsize, settings.sigma0,
                                                           settings.seed, num_params, best, best_fitness, es.mean,
                                                           float(es.sigma), x0))
            scalars.write(record.generation, _generation_scalars(record, scores))
            records.append(record)
            if on_generation is not None:
                on_generation(record)
    return records


def _dream_steps(evaluator: Evaluator) -> int:
    """The dream steps ``evaluator`` has counted (0 for one that does not count them)."""
    return int(getattr(evaluator, "dream_steps", 0))


def _generation_scalars(record: GenerationRecord, scores: np.ndarray) -> dict[str, float]:
    """A generation's TensorBoard scalars: its population's fitness (``scores`` (P,)), pycma's sigma, its
    throughput per second of search time (the mean solution's evaluations not counted) and the mean return of
    each evaluation of the mean solution (``mean_solution_return_<env>``) when there was one."""
    seconds = max(record.seconds, 1e-9)
    values = {"fitness_best": record.best_fitness, "fitness_mean": record.mean_fitness,
              "fitness_worst": record.worst_fitness, "fitness_std": float(scores.std()), "sigma": record.sigma,
              "generations_per_s": 1 / seconds, "candidates_per_s": len(scores) / seconds}
    if record.env_steps:
        values["env_steps_per_s"] = record.env_steps / seconds
    values.update({f"mean_solution_return_{env}": mean for env, (mean, _, _) in record.evaluations.items()})
    return values


def _start(out: Path, num_params: int, settings: CMAESConfig
           ) -> tuple[cma.CMAEvolutionStrategy, list[np.ndarray], np.ndarray, float, np.ndarray]:
    """The search to continue in run folder ``out``: pycma's strategy, the fitness (P,) of each generation done,
    the best candidate (D,) and its fitness (NaN and -inf before any finite fitness), and where it started (D,);
    rebuilt from the folder's state file, or fresh (from :func:`initial_mean`) when it has none."""
    if (out / CMAES_LEGACY_STATE_NAME).exists():
        raise _legacy_state_error(out / CMAES_LEGACY_STATE_NAME)
    path = out / CMAES_STATE_NAME
    if not path.exists():
        x0 = initial_mean(num_params, settings)
        return make_strategy(num_params, settings, x0), [], np.full(num_params, np.nan), -np.inf, x0
    state = load_state(path)
    check_settings(path, state, num_params, settings)
    began = time.perf_counter()
    es = replay(state, settings)
    log.info("resumed CMA-ES from %s: %d generations replayed in %.1f s", path, state.generation,
             time.perf_counter() - began)
    return es, list(state.fitness), state.best, state.best_fitness, state.x0


def _evaluate_mean(evaluator: Evaluator, mean: np.ndarray, settings: CMAESConfig, generation: int,
                   held_out_seeds: Sequence[range]) -> np.ndarray:
    """The returns (``eval_episodes``,) of the mean solution (D,) after ``generation``, on that generation's
    evaluation seeds (none of them in ``held_out_seeds``)."""
    seeds = generation_seeds(settings.seed, generation, settings.eval_episodes, stream=1, held_out=held_out_seeds)
    return evaluator(np.asarray(mean, np.float32)[None], seeds)[0]
