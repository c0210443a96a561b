"""CMA-ES driver and evaluators: same candidates as plain pycma, exact resume, lost workers, statistics."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
import ray
from ray import cloudpickle

from agents.cmaes import evolve, generation_seeds, make_strategy
from agents.evaluation import evaluate_params
from agents.evaluators import RayEvaluator, SerialEvaluator
from rollouts.ray_cluster import init_ray
from worldmodels.config import CMAESConfig

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules

TARGET = np.linspace(-0.5, 0.5, 6)


class QuadraticWorker:
    """Synthetic rollouts: return -||w - TARGET||^2 plus a small seed-dependent offset."""

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return -np.sum((params - TARGET) ** 2, axis=1) + 1e-3 * (seeds % 5)


class Recording:
    """Wraps an evaluator and keeps every candidate array it was given."""

    def __init__(self, evaluator):
        self.evaluator = evaluator
        self.seen: list[np.ndarray] = []

    @property
    def retried(self) -> int:
        return self.evaluator.retried

    @property
    def env_steps(self) -> int:
        return self.evaluator.env_steps

    def __call__(self, candidates, seeds):
        self.seen.append(candidates.copy())
        return self.evaluator(candidates, seeds)

    def close(self):
        self.evaluator.close()


SETTINGS = CMAESConfig(popsize=8, rollouts=3, sigma0=0.3, l2_coef=0.01, generations=60, seed=3, eval_every=1000,
                      eval_episodes=2)


@pytest.fixture(scope="module")
def local_ray():
    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_ray_evaluator_reproduces_plain_pycma_and_finds_the_optimum(local_ray, tmp_path):
    evaluator = Recording(RayEvaluator(QuadraticWorker, num_workers=2, chunk_size=5))
    try:
        records = evolve(evaluator, len(TARGET), SETTINGS, tmp_path)
    finally:
        evaluator.close()
    assert len(records) == 60 and evaluator.retried == 0
    # optimum of mean return - 0.01 * mean(w^2): TARGET shrunk by 1 / (1 + 0.01 / 6)
    np.testing.assert_allclose(np.load(tmp_path / "mean.npy"), TARGET / (1 + 0.01 / 6), atol=5e-3)

    es = make_strategy(len(TARGET), SETTINGS)
    for generation, seen in enumerate(evaluator.seen):
        candidates = np.asarray(es.ask())
        np.testing.assert_array_equal(candidates.astype(np.float32), seen)
        seeds = generation_seeds(SETTINGS.seed, generation, SETTINGS.rollouts)
        returns = np.stack([QuadraticWorker().run(seen, np.full(len(seen), s)) for s in seeds], axis=1)
        score = returns.mean(axis=1) - 0.01 * np.mean(candidates**2, axis=1)
        es.tell(list(candidates), list(-score))


def test_seed_zero_gives_the_same_candidates_in_every_run():
    # pycma reads seed 0 as "seed from the clock"; cmaes.seed 0 must still reproduce.
    settings = CMAESConfig(**{**vars(SETTINGS), "seed": 0})
    first = np.asarray(make_strategy(6, settings).ask())
    np.random.seed()  # whatever global state the process is in
    np.testing.assert_array_equal(np.asarray(make_strategy(6, settings).ask()), first)
    other = CMAESConfig(**{**vars(SETTINGS), "seed": 1})
    assert not np.array_equal(np.asarray(make_strategy(6, other).ask()), first)


def _log(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(path.open())]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 12, "eval_every": 4})
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "whole")
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts", stop_after=5)
    np.random.seed(12345)  # whatever else used numpy's global RNG meanwhile must not matter
    resumed = evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts")
    assert [r.generation for r in resumed] == list(range(5, 12))
    for name in ("mean.npy", "best.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "whole" / name), np.load(tmp_path / "parts" / name))
    assert _log(tmp_path / "whole" / "log.csv") == _log(tmp_path / "parts" / "log.csv")
    assert (tmp_path / "whole" / "eval.csv").read_text() == (tmp_path / "parts" / "eval.csv").read_text()
    assert len(_log(tmp_path / "parts" / "eval.csv")) == 3


def test_a_killed_worker_does_not_lose_the_generation(local_ray):
    killed = []

    def kill_once(pool):
        if not killed:
            killed.append(True)
            ray.kill(pool.actors[0], no_restart=True)

    evaluator = RayEvaluator(QuadraticWorker, num_workers=2, chunk_size=2, on_chunk=kill_once)
    candidates = np.random.default_rng(0).normal(size=(6, len(TARGET))).astype(np.float32)
    seeds = np.arange(4)
    try:
        returns = evaluator(candidates, seeds)
    finally:
        evaluator.close()
    assert evaluator.retried >= 1
    np.testing.assert_allclose(returns, SerialEvaluator(QuadraticWorker)(candidates, seeds))


def test_evaluation_statistics_match_hand_computed_ones(tmp_path):
    params = np.full(len(TARGET), 0.25, np.float32)
    report = evaluate_params(SerialEvaluator(QuadraticWorker), params, episodes=7, seed=100)
    returns = -np.sum((params - TARGET) ** 2) + 1e-3 * (np.arange(100, 107) % 5)
    assert report.seeds == list(range(100, 107))
    np.testing.assert_allclose(report.returns, returns, rtol=1e-6)
    assert report.mean == pytest.approx(returns.mean())
    assert report.std == pytest.approx(returns.std())
    assert (report.min, report.max) == (pytest.approx(returns.min()), pytest.approx(returns.max()))
    assert report.summary() == f"{returns.mean():.1f} +- {returns.std():.1f} over 7 episodes"
    report.write_json(tmp_path / "e.json")
    assert "returns" in (tmp_path / "e.json").read_text()


def test_a_state_file_of_another_size_is_refused(tmp_path):
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 1})
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path)
    with pytest.raises(ValueError, match="searches 6 parameters, the controller has 7"):
        evolve(SerialEvaluator(QuadraticWorker), 7, settings, tmp_path)
