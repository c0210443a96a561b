"""C in the real env: the lock-stepped V+M worker, run-folder errors, and the CLI end to end."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from agents.real_env import evaluate_controller_real
from rollouts.collect import EnvSpec
from worldmodels.checkpoint import ModelWeights, save_untrained_checkpoint
from worldmodels.config import load_config
from worldmodels.real_rollouts import RealEnvWorkerSpec


def write_untrained_models(run: Path, z_size: int = 32, hidden_size: int = 256) -> None:
    """Untrained V and M checkpoints in ``run``, where train-vae / train-mdnrnn would leave them."""
    save_untrained_checkpoint(run / "vae.pt", "vae", {"z_size": z_size})
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": z_size, "action_size": 3,
                                                            "hidden_size": hidden_size})


def read_models(run: Path) -> tuple[ModelWeights, ModelWeights]:
    """V's and M's weights read from ``run``, as a worker spec carries them."""
    return ModelWeights.read(run / "vae.pt", "vae"), ModelWeights.read(run / "mdnrnn.pt", "mdnrnn")


def test_lockstep_worker_runs_one_episode_per_row_reproducibly(tmp_path):
    write_untrained_models(tmp_path, z_size=8, hidden_size=16)
    spec = RealEnvWorkerSpec(EnvSpec("worldmodels/CarRacing-v0", 8), *read_models(tmp_path), num_envs=2)
    worker = spec()
    assert worker.num_params == (8 + 16) * 3 + 3
    params = np.random.default_rng(0).normal(0, 0.5, (3, worker.num_params)).astype(np.float32)
    seeds = np.array([5, 6, 7])
    returns = worker.run(params, seeds)
    assert returns.shape == (3,) and np.all(np.isfinite(returns))
    np.testing.assert_array_equal(worker.run(params, seeds), returns)
    with pytest.raises(ValueError, match="expected last axis 75"):
        worker.run(params[:, :-1], seeds)
    worker.close()


def test_an_episodes_return_does_not_depend_on_how_rollouts_are_batched(tmp_path):
    write_untrained_models(tmp_path, z_size=8, hidden_size=16)
    params = np.random.default_rng(1).normal(0, 0.5, (3, (8 + 2 * 16) * 3 + 3)).astype(np.float32)
    seeds = np.array([11, 12, 13])
    returns = []
    for num_envs in (1, 3):
        spec = RealEnvWorkerSpec(EnvSpec("worldmodels/CarRacing-v0", 6), *read_models(tmp_path), inputs="zch",
                                 num_envs=num_envs)
        worker = spec()
        returns.append(worker.run(params, seeds))
        if num_envs == 1:
            episode = worker.record(params[1], 12)
            assert episode.episode_return == returns[0][1]
            assert episode.frames.shape == (7, 64, 64, 3) and episode.frames.dtype == np.uint8
            assert episode.last_info["lap"]["steps"] == 6
        worker.close()
    np.testing.assert_array_equal(returns[0], returns[1])


class UnequalEpisodes(gym.Env):
    """Episodes of 2 + seed % 5 steps; frames drawn from the seed and the step, rewards from the actions taken."""

    observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.length, self.t, self.rng = 2 + seed % 5, 0, np.random.default_rng(seed)
        return self.frame(), {}

    def frame(self) -> np.ndarray:
        return self.rng.integers(0, 256, (64, 64, 3), np.uint8)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self.frame(), float(action @ [1.0, 2.0, 3.0]), self.t == self.length, False, {"t": self.t}


gym.register("tests/UnequalEpisodes-v0", entry_point=UnequalEpisodes)


def test_an_env_whose_episode_ends_starts_the_next_and_returns_keep_their_rows(tmp_path):
    write_untrained_models(tmp_path, z_size=8, hidden_size=16)
    spec = RealEnvWorkerSpec(EnvSpec("tests/UnequalEpisodes-v0"), *read_models(tmp_path), num_envs=1)
    params = np.random.default_rng(2).normal(0, 0.5, (7, (8 + 16) * 3 + 3)).astype(np.float32)
    seeds = np.array([20, 21, 22, 23, 24, 25, 26])  # 2 to 6 steps each
    returns, steps = [], []
    for num_envs in (1, 3, 7, 10):
        worker = replace(spec, num_envs=num_envs)()
        returns.append(worker.run(params, seeds))
        steps.append(worker.env_steps)
        worker.close()
    for batched in returns[1:]:
        np.testing.assert_array_equal(batched, returns[0])
    assert steps == [sum(2 + seeds % 5)] * 4
    worker = spec()
    episode = worker.record(params[3], 23)
    assert episode.episode_return == returns[0][3]
    assert episode.frames.shape == (6, 64, 64, 3) and episode.last_info == {"t": 5}


def test_missing_checkpoint_and_wrong_parameter_length_are_clear_errors(tmp_path):
    config = load_config("carracing-tiny")
    with pytest.raises(FileNotFoundError, match="vae.pt does not exist: run `worldmodels train-vae"):
        RealEnvWorkerSpec.for_run(config, tmp_path)
    write_untrained_models(tmp_path)
    with pytest.raises(FileNotFoundError, match="mean.npy does not exist: run `worldmodels train-controller"):
        evaluate_controller_real(config, tmp_path, 2)
    with pytest.raises(FileNotFoundError, match=r"^controller parameters \S*nope.npy do not exist$"):
        evaluate_controller_real(config, tmp_path, 2, tmp_path / "nope.npy")  # a file named by --params
    np.save(tmp_path / "short.npy", np.zeros(99, np.float32))
    with pytest.raises(ValueError, match=r"short.npy hold 99 values, but this run's controller has 867"):
        evaluate_controller_real(config, tmp_path, 2, tmp_path / "short.npy")


def test_cli_train_controller_then_evaluate(tmp_path):
    write_untrained_models(tmp_path)
    common = ["--preset", "carracing-tiny", "--run", str(tmp_path), "--set", "env.max_episode_steps=20"]
    train = subprocess.run([sys.executable, "-m", "worldmodels.cli", "train-controller", "--env", "real", *common,
                            "--set", "cmaes.generations=1", "--set", "cmaes.eval_every=1", "--set",
                            "cmaes.eval_episodes=2"], capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-2000:]
    assert "generation 0: fitness best" in train.stdout and "1 generations run, 1 done in all" in train.stdout
    for name in ("mean.npy", "best.npy", "log.csv", "eval.csv", "cmaes_state.npz"):
        assert (tmp_path / "controller" / name).is_file()
    (row,) = csv.DictReader((tmp_path / "controller" / "log.csv").open())
    (evaluation,) = csv.DictReader((tmp_path / "controller" / "eval.csv").open())
    assert evaluation["env"] == "real" and evaluation["episodes"] == "2"  # the mean solution, in the real env
    assert int(row["env_steps"]) == 4 * 2 * 20  # popsize x rollouts x 20-step episodes, counted by the workers
    # No --preset: evaluate reads the run's saved config.yaml (episodes of 20 steps, the tiny sizes).
    evaluate = subprocess.run([sys.executable, "-m", "worldmodels.cli", "evaluate", "--run", str(tmp_path),
                               "--episodes", "3", "--gif", str(tmp_path / "episode.gif"), "--gif-worst", "2"],
                              capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert len(report["returns"]) == 3 and len(set(report["seeds"])) == 3
    with Image.open(tmp_path / "episode.gif") as gif:
        assert gif.n_frames == 21 and gif.size == (128, 128)
    by_return = sorted(zip(report["returns"], report["seeds"]))
    worst = [f"worst_{rank}_seed_{seed}.gif" for rank, (_, seed) in enumerate(by_return[:2], start=1)]
    assert sorted(path.name for path in (tmp_path / "worst_episodes").iterdir()) == worst
    for name in worst:
        with Image.open(tmp_path / "worst_episodes" / name) as gif:
            assert gif.n_frames == 21
    assert "the 2 lowest-return episodes as GIFs in" in evaluate.stdout
    lowest_return, lowest_seed = by_return[0]
    assert re.search(rf"seed {lowest_seed}: return {lowest_return:.1f} \(\d+ of \d+ tiles, no lap finished, \d+ of 20 "
                     r"steps off the road\) -> \S*worst_1_seed_", evaluate.stderr)
    assert f"{report['mean']:.1f} +- {report['std']:.1f} over 3 episodes" in evaluate.stdout
