"""CMA-ES driver and evaluators: same candidates as plain pycma, exact resume, lost workers, statistics."""

from __future__ import annotations

import csv
import json
import logging
import pickle
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import cma
import numpy as np
import pytest
import ray
from ray import cloudpickle

from agents.cmaes import evolve, generation_seeds, load_state, make_strategy, save_state
from agents.evaluation import (
    DREAM_STARTS_KEY,
    EvaluationReport,
    evaluate_params,
    evaluation_seeds,
    reusable_report,
    score_provenance,
)
from agents.evaluators import RayEvaluator, SerialEvaluator
from rollouts.ray_cluster import init_ray
from worldmodels.config import load_config
from worldmodels.config_schema import CMAESConfig, Config
from worldmodels.run_layout import CMAES_LEGACY_STATE_NAME, CMAES_STATE_NAME
from worldmodels.seeds import held_out_seeds

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules

TARGET = np.linspace(-0.5, 0.5, 6)
CARRACING_PARAMS = 867  # the CarRacing controller: (32 + 256) x 3 weights + 3 biases


class QuadraticWorker:
    """Synthetic rollouts: return -||w - target||^2 plus a small seed-dependent offset."""

    target = TARGET

    def run(self, params: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return -np.sum((params - self.target) ** 2, axis=1) + 1e-3 * (seeds % 5)


class WideQuadraticWorker(QuadraticWorker):
    """The same synthetic rollouts at the CarRacing controller's size."""

    target = np.linspace(-0.5, 0.5, CARRACING_PARAMS)


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


class SeedRecording(Recording):
    """Keeps every seed array it was given as well."""

    def __init__(self, evaluator):
        super().__init__(evaluator)
        self.seeds: list[np.ndarray] = []

    def __call__(self, candidates, seeds):
        self.seeds.append(np.asarray(seeds).copy())
        return super().__call__(candidates, seeds)


def test_held_out_seeds_are_replaced_and_the_other_draws_kept():
    plain = generation_seeds(5, 2, 16)
    held_out = (range(int(plain[3]), int(plain[3]) + 1), range(int(plain[10]) - 10, int(plain[10]) + 10))
    seeds = generation_seeds(5, 2, 16, held_out=held_out)
    kept = np.ones(16, bool)
    kept[[3, 10]] = False
    np.testing.assert_array_equal(seeds[kept], plain[kept])
    assert not any(int(s) in block for s in seeds for block in held_out)
    assert len(set(seeds.tolist())) == 16 and seeds.dtype == np.int64
    np.testing.assert_array_equal(generation_seeds(5, 2, 16, held_out=held_out), seeds)  # a function of its inputs
    with pytest.raises(ValueError, match="nothing is left to train on"):
        generation_seeds(5, 2, 16, held_out=(range(0, 2**31),))


def test_a_search_never_trains_or_evaluates_on_held_out_seeds(tmp_path):
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 6, "eval_every": 2, "eval_episodes": 4})
    plain = SeedRecording(SerialEvaluator(QuadraticWorker))
    evolve(plain, len(TARGET), settings, tmp_path / "plain")
    drawn = np.concatenate(plain.seeds)
    held_out = tuple(range(int(s), int(s) + 1) for s in drawn[::3])  # a third of the plain run's seeds
    guarded = SeedRecording(SerialEvaluator(QuadraticWorker))
    evolve(guarded, len(TARGET), settings, tmp_path / "guarded", held_out_seeds=held_out)
    assert len(guarded.seeds) == len(plain.seeds)
    assert not any(int(s) in block for seeds in guarded.seeds for s in seeds for block in held_out)


def test_the_evaluation_and_calibration_seeds_are_held_out_of_training():
    config = load_config("carracing-tiny", ["evaluate.episodes=20000"])
    evaluation, calibration = held_out_seeds(config)
    assert set(evaluation_seeds(config.evaluate.seed, 20000).tolist()) <= set(evaluation)
    assert config.trust.seed in calibration and config.trust.seed + 9_999 in calibration
    assert set(evaluation).isdisjoint(calibration)


def test_seed_zero_gives_the_same_candidates_in_every_run():
    # pycma reads seed 0 as "seed from the clock"; cmaes.seed 0 must still reproduce.
    settings = CMAESConfig(**{**vars(SETTINGS), "seed": 0})
    first = np.asarray(make_strategy(6, settings).ask())
    np.random.seed()  # whatever global state the process is in
    np.testing.assert_array_equal(np.asarray(make_strategy(6, settings).ask()), first)
    other = CMAESConfig(**{**vars(SETTINGS), "seed": 1})
    assert not np.array_equal(np.asarray(make_strategy(6, other).ask()), first)


def test_pycma_samples_from_its_own_generator_not_numpys_global_one():
    es = make_strategy(6, SETTINGS)
    np.random.seed(7)
    before = np.random.get_state()[1].copy()
    for _ in range(3):
        candidates = np.asarray(es.ask())
        es.tell(list(candidates), list(np.sum(candidates**2, axis=1)))
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    # the stream of plain pycma seeded with seed + 1: the candidates of runs made before this generator
    plain = cma.CMAEvolutionStrategy(np.zeros(6), SETTINGS.sigma0, {"popsize": SETTINGS.popsize,
                                                                    "seed": SETTINGS.seed + 1, "verbose": -9})
    np.testing.assert_array_equal(np.asarray(plain.ask()), np.asarray(make_strategy(6, SETTINGS).ask()))


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


def test_a_search_started_from_a_controller_file_starts_there_and_resumes_exactly(tmp_path):
    start = tmp_path / "start.npy"
    np.save(start, (TARGET + 0.5).astype(np.float32))
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 6, "init_params": str(start)})
    recording = Recording(SerialEvaluator(QuadraticWorker))
    evolve(recording, len(TARGET), settings, tmp_path / "whole")
    # generation 0's candidates are spread around the file's parameters, not around zeros
    np.testing.assert_allclose(recording.seen[0].mean(axis=0), TARGET + 0.5, atol=3 * SETTINGS.sigma0)
    from_zeros = Recording(SerialEvaluator(QuadraticWorker))
    evolve(from_zeros, len(TARGET), CMAESConfig(**{**vars(settings), "init_params": None}), tmp_path / "zeros")
    np.testing.assert_allclose(recording.seen[0] - (TARGET + 0.5).astype(np.float32), from_zeros.seen[0], atol=1e-6)
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts", stop_after=2)
    np.save(tmp_path / "start.npy", np.zeros(len(TARGET), np.float32))  # the file changed since the search began
    with pytest.raises(ValueError, match=r"started from other parameters, the settings start from .*start.npy "
                                         r"\(cmaes.init_params\): use that run's starting point, or a new run folder"):
        evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts")
    np.save(start, (TARGET + 0.5).astype(np.float32))
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts")
    for name in ("mean.npy", "best.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "whole" / name), np.load(tmp_path / "parts" / name))
    np.testing.assert_array_equal(load_state(tmp_path / "parts" / CMAES_STATE_NAME).x0,
                                  (TARGET + 0.5).astype(np.float32))  # the file's float32 values, exactly


def test_a_search_from_zeros_refuses_to_resume_from_a_file_and_a_bad_file_is_one_clear_error(tmp_path):
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 2})
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "run", stop_after=1)
    start = tmp_path / "start.npy"
    from_file = CMAESConfig(**{**vars(settings), "init_params": str(start)})
    np.save(start, np.ones(len(TARGET), np.float32))
    with pytest.raises(ValueError, match="started from the zero vector, the settings start from .*start.npy"):
        evolve(SerialEvaluator(QuadraticWorker), len(TARGET), from_file, tmp_path / "run")
    np.save(start, np.ones(len(TARGET) + 1, np.float32))
    with pytest.raises(ValueError, match=r"start.npy hold 7 values, but this run's controller has 6"):
        evolve(SerialEvaluator(QuadraticWorker), len(TARGET), from_file, tmp_path / "new")
    assert not (tmp_path / "new" / CMAES_STATE_NAME).exists()


def test_a_state_of_format_1_resumes_as_a_search_from_zeros(tmp_path):
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 4})
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "whole")
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts", stop_after=2)
    path = tmp_path / "parts" / CMAES_STATE_NAME
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files if key != "x0"}
    with path.open("wb") as file:  # as this project wrote states before it kept the starting point
        np.savez(file, **(arrays | {"format": np.asarray(1)}))
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts")
    np.testing.assert_array_equal(np.load(tmp_path / "whole" / "mean.npy"), np.load(tmp_path / "parts" / "mean.npy"))


def test_resume_at_the_carracing_controller_size_is_bit_exact(tmp_path):
    # At 867 parameters pycma's sampler updates its eigendecomposition lazily, so a resume that restores
    # anything but the exact state drifts from the uninterrupted run within a few generations.
    settings = CMAESConfig(**{**vars(SETTINGS), "popsize": 16, "rollouts": 2, "generations": 10, "eval_every": 4})
    whole = Recording(SerialEvaluator(WideQuadraticWorker))
    evolve(whole, CARRACING_PARAMS, settings, tmp_path / "whole")
    before = Recording(SerialEvaluator(WideQuadraticWorker))
    evolve(before, CARRACING_PARAMS, settings, tmp_path / "parts", stop_after=5)
    np.random.seed(12345)  # whatever else used numpy's global RNG meanwhile must not matter
    after = Recording(SerialEvaluator(WideQuadraticWorker))
    evolve(after, CARRACING_PARAMS, settings, tmp_path / "parts")
    assert len(before.seen) + len(after.seen) == len(whole.seen) == 10 + 2  # generations, mean evaluations
    for call, (expected, seen) in enumerate(zip(whole.seen, before.seen + after.seen)):
        np.testing.assert_array_equal(seen, expected, err_msg=f"evaluator call {call}")
    for name in ("mean.npy", "best.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "parts" / name), np.load(tmp_path / "whole" / name))
    assert _log(tmp_path / "parts" / "log.csv") == _log(tmp_path / "whole" / "log.csv")


def test_a_killed_worker_does_not_lose_the_generation(local_ray):
    killed = []

    def kill_once(pool):  # every worker, at the first result: the one that sent it is started and gets the next task
        if not killed:
            killed.append(True)
            for actor in pool.actors:
                ray.kill(actor, no_restart=True)

    evaluator = RayEvaluator(QuadraticWorker, num_workers=2, chunk_size=2, on_chunk=kill_once)
    candidates = np.random.default_rng(0).normal(size=(6, len(TARGET))).astype(np.float32)
    seeds = np.arange(4)
    try:
        returns = evaluator(candidates, seeds)
    finally:
        evaluator.close()
    assert evaluator.retried >= 1
    np.testing.assert_allclose(returns, SerialEvaluator(QuadraticWorker)(candidates, seeds))


def test_a_progress_bar_counts_every_rollout_and_changes_no_return(local_ray, capsys):
    candidates = np.random.default_rng(1).normal(size=(3, len(TARGET))).astype(np.float32)
    seeds = np.arange(5)
    shown = RayEvaluator(QuadraticWorker, num_workers=2, chunk_size=4, progress="scoring")
    try:
        with_bar = shown(candidates, seeds)
        first_call = capsys.readouterr().err
        shown(candidates[:1], seeds)  # a second call draws a fresh bar
        second_call = capsys.readouterr().err
    finally:
        shown.close()
    silent = RayEvaluator(QuadraticWorker, num_workers=2)  # after the first's actors are gone: 2 CPUs in all
    try:
        without_bar = silent(candidates, seeds)
    finally:
        silent.close()
    np.testing.assert_array_equal(with_bar, without_bar)
    assert "scoring" in first_call and "15/15" in first_call and "episode" in first_call
    assert "5/5" in second_call and "15/15" not in second_call
    # No bar without a label. Ray's log monitor may forward its own lines (a gcs_server notice about killed actors)
    # to stderr at any moment, so look for the bar's marks rather than for an empty stream.
    unlabelled = capsys.readouterr().err
    assert "episode" not in unlabelled and "/15" not in unlabelled


def test_evaluation_statistics_match_hand_computed_ones(tmp_path):
    params = np.full(len(TARGET), 0.25, np.float32)
    report = evaluate_params(SerialEvaluator(QuadraticWorker), params, episodes=7, seed=100)
    returns = -np.sum((params - TARGET) ** 2) + 1e-3 * (np.arange(100, 107) % 5)
    assert report.seeds == list(range(100, 107))
    np.testing.assert_allclose(report.returns, returns, rtol=1e-6)
    assert report.mean == pytest.approx(returns.mean())
    assert report.std == pytest.approx(returns.std())
    assert (report.min, report.max) == (pytest.approx(returns.min()), pytest.approx(returns.max()))
    assert report.summary() == f"{returns.mean():.1f} +- {returns.std():.1f} over 7 episodes (seeds 100..106)"
    report.write_json(tmp_path / "e.json")
    assert "returns" in (tmp_path / "e.json").read_text()


def test_the_worst_episodes_are_the_lowest_returns_with_ties_in_seed_order():
    report = EvaluationReport.from_returns(np.array([5.0, -1.0, 3.0, -1.0, 9.0]), np.arange(10, 15))
    assert report.worst(3) == [(11, -1.0), (13, -1.0), (12, 3.0)]
    assert report.worst(0) == [] and len(report.worst(99)) == 5


def test_a_stored_report_is_reused_only_for_the_same_controller_checkpoints_settings_and_seeds(tmp_path, caplog,
                                                                                              episode_folder):
    params_path, report_path = tmp_path / "controller" / "mean.npy", tmp_path / "score.json"
    params_path.parent.mkdir()
    np.save(params_path, np.zeros(len(TARGET), np.float32))
    (tmp_path / "vae.pt").write_bytes(b"V")
    (tmp_path / "mdnrnn.pt").write_bytes(b"M")
    config = Config()
    real = score_provenance(config, tmp_path, params_path)
    dream = score_provenance(config, tmp_path, params_path, episode_folder(2, 3, latents_z=4))
    assert set(real["files"]) == {"controller", "vae.pt", "mdnrnn.pt"}
    assert set(dream["files"]) == {"controller", "vae.pt", "mdnrnn.pt", DREAM_STARTS_KEY}
    assert set(real["settings"]) == {"env", "controller"} and set(dream["settings"]) == {"env", "controller", "dream"}
    report = evaluate_params(SerialEvaluator(QuadraticWorker), np.load(params_path), episodes=3, seed=100)
    report = replace(report, provenance=real)
    report.write_json(report_path)
    seeds = evaluation_seeds(100, 3)
    assert EvaluationReport.read_json(report_path) == report
    assert reusable_report(report_path, seeds, real) == report
    assert reusable_report(report_path, evaluation_seeds(7, 3), real) is None  # other seeds asked for
    assert reusable_report(report_path, seeds, dream) is None  # a real score is not a dream score

    def changed(**what) -> None:
        with caplog.at_level(logging.INFO):
            caplog.clear()
            assert reusable_report(report_path, seeds, score_provenance(**{"config": config, **what})) is None
        assert "score.json scored another" in caplog.text and "evaluating again" in caplog.text

    np.save(params_path, np.ones(len(TARGET), np.float32))  # the controller changed after it was scored
    changed(run_dir=tmp_path, params_path=params_path)
    assert "files controller" in caplog.text
    np.save(params_path, np.zeros(len(TARGET), np.float32))
    assert reusable_report(report_path, seeds, score_provenance(config, tmp_path, params_path)) == report
    (tmp_path / "vae.pt").write_bytes(b"another V")
    changed(run_dir=tmp_path, params_path=params_path)
    assert "files vae.pt" in caplog.text
    (tmp_path / "vae.pt").write_bytes(b"V")
    changed(config=replace(config, env=replace(config.env, max_episode_steps=50)), run_dir=tmp_path,
            params_path=params_path)
    assert "settings env" in caplog.text
    dream_settings = replace(config, dream=replace(config.dream, temperature=0.5))
    assert reusable_report(report_path, seeds, score_provenance(dream_settings, tmp_path, params_path)) == report

    legacy = {key: value for key, value in json.loads(report_path.read_text()).items() if key != "provenance"}
    report_path.write_text(json.dumps(legacy))  # written before reports recorded what they scored
    with caplog.at_level(logging.INFO):
        assert reusable_report(report_path, seeds, real) is None
    assert "does not record what it scored" in caplog.text
    report_path.write_text(json.dumps(legacy | {"provenance": {"files": "?"}}))  # a provenance of another shape
    with caplog.at_level(logging.WARNING):
        assert reusable_report(report_path, seeds, real) is None
    assert "its provenance is not a mapping of files and settings" in caplog.text
    report_path.write_text('{"mean": 1')  # cut short
    with caplog.at_level(logging.WARNING):
        assert reusable_report(report_path, seeds, real) is None
    assert "score.json is not an evaluation report" in caplog.text
    assert reusable_report(tmp_path / "missing.json", seeds, real) is None


def test_a_state_file_of_another_size_is_refused(tmp_path):
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 1})
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path)
    with pytest.raises(ValueError, match="searches 6 parameters, the controller has 7"):
        evolve(SerialEvaluator(QuadraticWorker), 7, settings, tmp_path)


@pytest.mark.parametrize(("setting", "value"), [("popsize", 9), ("sigma0", 0.2), ("seed", 4)])
def test_a_state_made_with_other_settings_is_refused(tmp_path, setting, value):
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), CMAESConfig(**{**vars(SETTINGS), "generations": 1}),
           tmp_path)
    changed = CMAESConfig(**{**vars(SETTINGS), setting: value})
    made = getattr(SETTINGS, setting)
    with pytest.raises(ValueError, match=rf"made with cmaes.{setting} {made}, the settings have {value}: use the "
                                         rf"settings of that run \(cmaes.{setting}={made}\), or a new run folder"):
        evolve(SerialEvaluator(QuadraticWorker), len(TARGET), changed, tmp_path)
    assert len(_log(tmp_path / "log.csv")) == 1


class _TouchOnUnpickle:
    """Unpickling this creates ``path``: what a crafted state file could do if it were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def _write_crafted(kind: str, path: Path, marker: Path) -> None:
    if kind in ("pickle", "legacy pickle"):
        path.write_bytes(pickle.dumps(_TouchOnUnpickle(marker)))
    elif kind == "pickle inside npz":
        with path.open("wb") as file:
            np.savez(file, fitness=np.array([_TouchOnUnpickle(marker)], dtype=object))
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "zip of other files":  # the right names, but not .npy members
        with np.load(path) as data:
            keys = data.files
        with zipfile.ZipFile(path, "w") as archive:
            for key in keys:
                archive.writestr(key, "1")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "wrong shapes":
        state = load_state(path)
        state.mean = state.mean[:-1]
        save_state(path, state)


@pytest.mark.parametrize("kind", ["pickle", "legacy pickle", "pickle inside npz", "random bytes", "zip of other files",
                                  "truncated", "wrong shapes"])
def test_a_crafted_or_corrupt_state_file_is_one_clear_error_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "unpickled"
    pickle.loads(pickle.dumps(_TouchOnUnpickle(marker)))
    assert marker.exists()  # the payload works when unpickled
    marker.unlink()
    out = tmp_path / "controller"
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 1})
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, out)
    path = out / (CMAES_LEGACY_STATE_NAME if kind == "legacy pickle" else CMAES_STATE_NAME)
    _write_crafted(kind, path, marker)
    expected = "older version of this project" if kind == "legacy pickle" else "is unreadable"
    with pytest.raises(ValueError, match=rf"{expected}.*move the folder .*controller away .*or use a new run folder"):
        evolve(SerialEvaluator(QuadraticWorker), len(TARGET), CMAESConfig(**{**vars(SETTINGS), "generations": 2}),
               out)
    assert not marker.exists()
    assert len(_log(out / "log.csv")) == 1


def test_a_replay_that_differs_from_the_stored_mean_warns_and_continues(tmp_path, caplog):
    # what another pycma version or CPU may do; simulated by altering the stored mean
    settings = CMAESConfig(**{**vars(SETTINGS), "generations": 3})
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "whole")
    evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts", stop_after=2)
    state = load_state(tmp_path / "parts" / CMAES_STATE_NAME)
    state.mean = state.mean + 0.25
    save_state(tmp_path / "parts" / CMAES_STATE_NAME, state)
    with caplog.at_level(logging.WARNING, logger="agents.cmaes"):
        evolve(SerialEvaluator(QuadraticWorker), len(TARGET), settings, tmp_path / "parts")
    assert "differ from the stored ones by up to 0.25" in caplog.text
    np.testing.assert_array_equal(np.load(tmp_path / "parts" / "mean.npy"), np.load(tmp_path / "whole" / "mean.npy"))
