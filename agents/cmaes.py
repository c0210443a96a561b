"""CMA-ES over controller parameters: pycma's ask/tell, a pluggable evaluator, checkpoints every generation.

Fitness (maximised) of a candidate w (D,) with returns G (R,) over its R rollouts:

    fitness = mean(G) - l2_coef * mean(w ** 2)

the authors' ``compute_weight_decay`` (es.py); pycma minimises, so it is told -fitness.

Generation g's R episode seeds are drawn from ``SeedSequence([seed, g])`` and shared by every candidate
(common random numbers); the seeds of one candidate are distinct. The mean solution's evaluation every
``eval_every`` generations uses seeds from ``SeedSequence([seed, g, 1])``.

Run folder (``out_dir``), all written atomically after every generation:

    cmaes_state.pkl   pycma's strategy object and numpy's global RNG state (pycma samples from it), pickled
    best.npy          the best candidate seen so far (D,) float32
    mean.npy          the distribution mean (D,) float32, the solution to deploy
    log.csv           generation, best/mean/worst fitness, sigma, seconds, retried, env_steps (real-env steps
                      of the generation's rollouts; 0 in a dream)
    eval.csv          generation, env, mean/std/min/max return of the mean solution, episodes; one row per
                      evaluation env (``train`` by default; ``dream`` and ``real`` when training in a dream)

Restarted with the same ``out_dir`` the run resumes after the last finished generation and continues
exactly as an uninterrupted run would (log rows past it, written before a crash, are dropped).
"""

from __future__ import annotations

import csv
import io
import pickle
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluators import Evaluator
from rollouts.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from worldmodels.config import CMAESConfig
from worldmodels.controller import MEAN_PARAMS_NAME

with warnings.catch_warnings():  # pycma warns on import when matplotlib (only for its plots) is absent
    warnings.filterwarnings("ignore", message="Could not import matplotlib")
    import cma

STATE_NAME = "cmaes_state.pkl"
LOG_COLUMNS = ("generation", "best_fitness", "mean_fitness", "worst_fitness", "sigma", "seconds", "retried",
               "env_steps")
EVAL_COLUMNS = ("generation", "env", "mean_return", "std_return", "min_return", "max_return", "episodes")


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
    evaluations: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    """Evaluations of the mean solution after this generation: env -> (mean, std, episodes) of its returns."""

    def describe(self) -> str:
        evaluations = "".join(f"; mean solution in {env}: {mean:.1f} +- {std:.1f} over {count}"
                              for env, (mean, std, count) in self.evaluations.items())
        return (f"generation {self.generation}: fitness best {self.best_fitness:.2f} mean {self.mean_fitness:.2f} "
                f"worst {self.worst_fitness:.2f}, sigma {self.sigma:.4f}, {self.seconds:.1f} s"
                + (f", {self.retried} chunks retried after a worker died" if self.retried else "") + evaluations)


def fitness(candidates: np.ndarray, returns: np.ndarray, l2_coef: float) -> np.ndarray:
    """Fitness (P,) of candidates (P, D) with returns (P, R): mean return - l2_coef * mean(w^2)."""
    return returns.mean(axis=1) - l2_coef * np.mean(np.square(candidates), axis=1)


def generation_seeds(seed: int, generation: int, count: int, stream: int = 0) -> np.ndarray:
    """``count`` distinct episode seeds (int64 in [0, 2^31)) for a generation; stream 1 is for evaluations."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, generation, stream]))
    return rng.choice(2**31, size=count, replace=False).astype(np.int64)


def make_strategy(num_params: int, settings: CMAESConfig) -> cma.CMAEvolutionStrategy:
    """pycma's strategy from the zero vector, quiet, writing no ``outcmaes/`` files, seeded with
    ``settings.seed + 1``: pycma reads seed 0 as "seed from the clock", which would make seed 0 irreproducible."""
    options = {"popsize": settings.popsize, "seed": settings.seed + 1, "verbose": -9, "verb_log": 0,
               "verb_disp": 0, "verb_filenameprefix": "", "CMA_diagonal": False}
    return cma.CMAEvolutionStrategy(np.zeros(num_params), settings.sigma0, options)


def save_state(path: Path, es: cma.CMAEvolutionStrategy, generation: int, best: np.ndarray | None,
               best_fitness: float) -> None:
    """Write the resumable state atomically (pickle: pycma's own objects are not plain tensors)."""
    state = {"generation": generation, "es": es, "numpy_rng": np.random.get_state(), "best": best,
             "best_fitness": best_fitness}
    atomic_write_bytes(path, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def load_state(path: Path) -> dict[str, Any]:
    """Read a state file written by :func:`save_state`.

    This unpickles, which can run code: it is only ever pointed at the ``cmaes_state.pkl`` this module
    wrote into the run folder (pycma's strategy has no tensor-only form). Torch checkpoints elsewhere
    in the project are still read with ``weights_only=True``.
    """
    try:
        return pickle.loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise ValueError(f"CMA-ES state {path} is unreadable ({type(err).__name__}: {err}); move it away to "
                         "start the search from scratch") from None


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
) -> list[GenerationRecord]:
    """Run (or resume) CMA-ES until ``settings.generations`` generations are done.

    :param evaluator: ``evaluator(candidates (P, D), seeds (R,)) -> returns (P, R)``.
    :param on_generation: called with each finished generation's record (the CLI prints it).
    :param stop_after: stop once this many generations are done in total (tests use it to interrupt).
    :param evaluations: where the mean solution is evaluated every ``eval_every`` generations, by name
        (the eval.csv ``env`` column); default ``{"train": evaluator}``.
    :returns: the records of the generations run by this call.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_NAME
    if state_path.exists():
        state = load_state(state_path)
        es, generation = state["es"], state["generation"]
        if es.N != num_params:
            raise ValueError(f"CMA-ES state {state_path} searches {es.N} parameters, the controller has "
                             f"{num_params}: use the settings of that run, or a new run folder")
        np.random.set_state(state["numpy_rng"])
        best, best_fitness = state["best"], state["best_fitness"]
    else:
        es, generation, best, best_fitness = make_strategy(num_params, settings), 0, None, -np.inf
    _keep_rows(out / "log.csv", LOG_COLUMNS, generation)
    _keep_rows(out / "eval.csv", EVAL_COLUMNS, generation)
    last = settings.generations if stop_after is None else min(stop_after, settings.generations)
    records = []
    while generation < last:
        start = time.perf_counter()
        retried_before, steps_before = evaluator.retried, evaluator.env_steps
        candidates = np.asarray(es.ask(), np.float64)  # (P, D)
        returns = evaluator(candidates.astype(np.float32), generation_seeds(settings.seed, generation,
                                                                            settings.rollouts))
        scores = fitness(candidates, returns, settings.l2_coef)  # (P,)
        es.tell(list(candidates), list(-scores))
        if scores.max() > best_fitness:
            best, best_fitness = candidates[scores.argmax()].copy(), float(scores.max())
        record = GenerationRecord(generation, float(scores.max()), float(scores.mean()), float(scores.min()),
                                  float(es.sigma), time.perf_counter() - start, evaluator.retried - retried_before,
                                  evaluator.env_steps - steps_before)
        generation += 1
        if generation % settings.eval_every == 0:
            for name, mean_evaluator in (evaluations or {"train": evaluator}).items():
                record.evaluations[name] = _evaluate_mean(mean_evaluator, name, es.mean, settings,
                                                          record.generation, out)
        _save_npy(out / MEAN_PARAMS_NAME, es.mean)
        _save_npy(out / "best.npy", best)
        _append_row(out / "log.csv", LOG_COLUMNS, {name: getattr(record, name) for name in LOG_COLUMNS})
        save_state(state_path, es, generation, best, best_fitness)
        records.append(record)
        if on_generation is not None:
            on_generation(record)
    return records


def _evaluate_mean(evaluator: Evaluator, env: str, mean: np.ndarray, settings: CMAESConfig, generation: int,
                   out: Path) -> tuple[float, float, int]:
    """Run the mean solution on ``eval_episodes`` seeds, append the statistics to eval.csv; (mean, std, episodes)."""
    seeds = generation_seeds(settings.seed, generation, settings.eval_episodes, stream=1)
    returns = evaluator(np.asarray(mean, np.float32)[None], seeds)[0]
    _append_row(out / "eval.csv", EVAL_COLUMNS, {
        "generation": generation, "env": env, "mean_return": returns.mean(), "std_return": returns.std(),
        "min_return": returns.min(), "max_return": returns.max(), "episodes": len(returns)})
    return float(returns.mean()), float(returns.std()), len(returns)
