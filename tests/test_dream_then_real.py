"""C evolved in M's dream, then in the real env, by one CMA-ES search (``controller.train_in: dream_then_real``):
real steps counted exactly (rollouts and the mean solution's evaluations), a restart before, at or after the switch
continuing like an uninterrupted run, older log files resuming, the refusal of an M without reward and done heads,
a controller evolved on the low-resolution renderer evaluated on Gymnasium's own frames, and (slow) a tiny
``worldmodels run`` of preset carracing-cpu-full-dream-then-real with 1000-step episodes through every stage."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from conftest import StepCountingWorker

from agents.cmaes import dream_steps, evolve, real_env_steps
from agents.controller_training import check_dream_then_real, dream_generations
from agents.dream_training import train_controller_dream
from agents.evaluators import SerialEvaluator
from worldmodels.checkpoint import save_untrained_checkpoint
from worldmodels.config import load_config, save_config
from worldmodels.config_schema import CMAESConfig, Config
from worldmodels.encode import encode_episodes
from worldmodels.pictures import read_csv_columns
from worldmodels.real_rollouts import RealEnvWorkerSpec

STEPS = 10
"""Real episode cap of the small runs: too short for the car to finish a lap or leave the playfield, so every real
episode runs exactly this many steps."""
POPSIZE, ROLLOUTS, EVAL_EPISODES, GENERATIONS, DREAM_GENERATIONS = 4, 2, 2, 5, 2


def tiny_config(*overrides: str) -> Config:
    return load_config("carracing-tiny", overrides=[
        "device=cpu", "env.id=worldmodels/CarRacingFast-v0", f"env.max_episode_steps={STEPS}", "vae.z_size=8",
        "mdnrnn.hidden_size=16", "mdnrnn.reward_head=true", "mdnrnn.done_head=true",
        "controller.train_in=dream_then_real", f"cmaes.popsize={POPSIZE}", f"cmaes.rollouts={ROLLOUTS}",
        f"cmaes.generations={GENERATIONS}", f"cmaes.dream_generations={DREAM_GENERATIONS}", "cmaes.eval_every=1",
        f"cmaes.eval_episodes={EVAL_EPISODES}", "dream.temperature=1.15", *overrides])


def write_run(run: Path, episodes: Path, reward_head: bool = True, done_head: bool = True) -> None:
    """Untrained V (z 8) and M (16 units) in ``run``, the ``episodes`` encoded by that V (the dreams' starts)."""
    save_untrained_checkpoint(run / "vae.pt", "vae", {"z_size": 8})
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": 8, "action_size": 3, "hidden_size": 16,
                                                            "reward_head": reward_head, "done_head": done_head})
    encode_episodes(run / "vae.pt", episodes, device="cpu")


@pytest.fixture
def run(episode_folder, tmp_path: Path, one_torch_thread) -> tuple[Config, Path, Path]:
    episodes, run = episode_folder(3, 12), tmp_path / "run"
    write_run(run, episodes)
    return tiny_config(), run, episodes


class Interrupted(Exception):
    """Stands for a crash right after a generation was saved."""


def train(config: Config, run: Path, episodes: Path, out: Path, crash_after: int | None = None) -> None:
    """The dream-then-real search into ``out``, its real env run in this process; ``crash_after``: stop there."""
    def on_generation(record) -> None:
        if record.generation == crash_after:
            raise Interrupted

    real = SerialEvaluator(RealEnvWorkerSpec.for_run(config, run))
    try:
        train_controller_dream(config, run, episodes, on_generation, out_dir=out, real=real,
                               real_from=config.cmaes.dream_generations)
    except Interrupted:
        pass
    finally:
        real.close()


def rows(path: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(path.open())]


def test_the_dream_comes_first_then_the_real_env_and_every_real_step_is_counted(run):
    config, run_dir, episodes = run
    assert dream_generations(config) == DREAM_GENERATIONS
    out = run_dir / "controller"
    train(config, run_dir, episodes, out)
    log = rows(out / "log.csv")
    rollout_steps, eval_steps = POPSIZE * ROLLOUTS * STEPS, EVAL_EPISODES * STEPS
    # Dream generations take no real step; every real rollout and real evaluation episode takes exactly STEPS.
    assert [int(row["env_steps"]) for row in log] == [0] * DREAM_GENERATIONS + [rollout_steps] * 3
    assert [int(row["eval_env_steps"]) for row in log] == [eval_steps] * GENERATIONS
    evaluations = rows(out / "eval.csv")
    assert [(int(row["generation"]), row["env"]) for row in evaluations] == [
        (0, "dream"), (0, "real"), (1, "dream"), (1, "real"), (2, "real"), (3, "real"), (4, "real")]
    real_totals = [int(row["env_steps_total"]) for row in evaluations if row["env"] == "real"]
    expected = np.cumsum([eval_steps, eval_steps, rollout_steps + eval_steps, rollout_steps + eval_steps,
                          rollout_steps + eval_steps])
    assert real_totals == expected.tolist()
    assert [int(row["env_steps_total"]) for row in evaluations if row["env"] == "dream"] == [0, eval_steps]
    assert real_env_steps(out) == expected[-1] == 3 * rollout_steps + GENERATIONS * eval_steps
    # Dream steps: the dream generations' rollouts and their mean solution's dream evaluations, none after.
    dream_counts = [int(row["dream_steps"]) for row in log]
    assert all(count > 0 for count in dream_counts[:DREAM_GENERATIONS]) and dream_counts[DREAM_GENERATIONS:] == [0] * 3
    assert dream_steps(out) == sum(dream_counts)


@pytest.mark.parametrize("crash_after", [0, DREAM_GENERATIONS - 1, DREAM_GENERATIONS],
                         ids=["before the switch", "at the switch", "after the switch"])
def test_a_restart_continues_exactly_like_an_uninterrupted_run(run, crash_after):
    config, run_dir, episodes = run
    whole, parts = run_dir / "whole", run_dir / "parts"
    train(config, run_dir, episodes, whole)
    train(config, run_dir, episodes, parts, crash_after=crash_after)
    assert len(rows(parts / "log.csv")) == crash_after + 1
    train(config, run_dir, episodes, parts)
    assert rows(parts / "log.csv") == rows(whole / "log.csv")
    assert (parts / "eval.csv").read_text() == (whole / "eval.csv").read_text()
    for name in ("mean.npy", "best.npy"):
        np.testing.assert_array_equal(np.load(parts / name), np.load(whole / name))


def test_counts_are_the_episode_lengths_run_and_older_log_files_resume(tmp_path):
    settings = CMAESConfig(popsize=4, rollouts=3, generations=3, eval_every=1, eval_episodes=5, seed=1)
    evaluator = SerialEvaluator(StepCountingWorker)
    evolve(evaluator, 6, settings, tmp_path)
    assert real_env_steps(tmp_path) == evaluator.env_steps  # every episode run, rollouts and evaluations
    totals = [int(row["env_steps_total"]) for row in csv.DictReader((tmp_path / "eval.csv").open())]
    log = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert totals == np.cumsum([int(row["env_steps"]) + int(row["eval_env_steps"]) for row in log]).tolist()
    # An older version wrote neither column: its files resume, its evaluations read as uncounted.
    for name, column in (("log.csv", "eval_env_steps"), ("eval.csv", "env_steps_total")):
        with (tmp_path / name).open() as file:
            old = [{k: v for k, v in row.items() if k != column} for row in csv.DictReader(file)]
        with (tmp_path / name).open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(old[0]))
            writer.writeheader()
            writer.writerows(old)
    rollouts = sum(int(row["env_steps"]) for row in log)
    assert real_env_steps(tmp_path) == rollouts
    assert len(read_csv_columns(tmp_path / "eval.csv", ["env_steps_total"], skip_blank=True)["env_steps_total"]) == 0
    resumed = SerialEvaluator(StepCountingWorker)
    evolve(resumed, 6, replace(settings, generations=5), tmp_path)
    assert real_env_steps(tmp_path) == rollouts + resumed.env_steps
    curve = read_csv_columns(tmp_path / "eval.csv", ["generation", "env_steps_total"], skip_blank=True)
    assert curve["generation"].tolist() == [3, 4]  # the rows written since, each counting what came before
    assert curve["env_steps_total"][-1] == rollouts + resumed.env_steps


@pytest.mark.parametrize("heads", [(False, True), (True, False)], ids=["no reward head", "no done head"])
def test_an_m_without_reward_and_done_heads_is_refused_in_one_line(episode_folder, tmp_path, heads):
    write_run(tmp_path, episode_folder(1, 5), *heads)
    missing = "reward head" if not heads[0] else "done head"
    with pytest.raises(ValueError, match=f"needs M with a done head and a reward head .* has no {missing}: train M "
                                         "with mdnrnn.reward_head=true") as error:
        check_dream_then_real(tiny_config(), tmp_path)
    assert "\n" not in str(error.value)
    if heads[1]:  # survival dreams (Doom) need the done head only
        check_dream_then_real(tiny_config("dream.reward_mode=survival"), tmp_path)


def test_a_controller_evolved_on_the_low_res_renderer_evaluates_on_gymnasiums_frames(tmp_path, one_torch_thread):
    run = tmp_path / "run"
    config = tiny_config("env.id=worldmodels/CarRacingLowRes-v0", "env.max_episode_steps=15",
                         "controller.train_in=real", "cmaes.generations=2", "cmaes.eval_every=10")
    save_untrained_checkpoint(run / "vae.pt", "vae", {"z_size": 8})
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": 8, "action_size": 3, "hidden_size": 16})
    save_config(config, run / "config.yaml")
    evaluator = SerialEvaluator(RealEnvWorkerSpec.for_run(config, run))
    evolve(evaluator, evaluator.worker.num_params, config.cmaes, run / "controller")
    evaluator.close()
    result = subprocess.run([sys.executable, "-m", "worldmodels.cli", "evaluate", "--run", str(run), "--episodes", "3",
                             "--set", "env.id=worldmodels/CarRacing-v0"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run / "evaluation.json").read_text())
    assert len(report["returns"]) == 3 and "evaluate: " in result.stdout
    # The scores are those of the same controller, V and M on Gymnasium's own frames, episode for episode.
    gymnasium_frames = replace(config, env=replace(config.env, id="worldmodels/CarRacing-v0"))
    worker = RealEnvWorkerSpec.for_run(gymnasium_frames, run, num_envs=1)()
    params = np.load(run / "controller" / "mean.npy")
    np.testing.assert_array_equal(worker.run(np.repeat(params[None], 3, axis=0), np.array(report["seeds"])),
                                  report["returns"])
    worker.close()


@pytest.mark.slow
def test_a_tiny_full_length_dream_then_real_run_goes_through_every_stage(tmp_path):
    run = tmp_path / "run"
    tiniest = [f"--set={key}" for key in (
        "collect.episodes=2", "vae.epochs=1", "vae.max_steps=2", "vae.batch_size=16", "mdnrnn.steps=2",
        "mdnrnn.batch_size=2", "cmaes.popsize=4", "cmaes.rollouts=1", "cmaes.generations=2",
        "cmaes.dream_generations=1", "cmaes.eval_every=1", "cmaes.eval_episodes=1", "evaluate.episodes=2")]
    # One torch thread: the driver runs the GIFs' 1000-step episodes itself, 10x slower on 2 threads of busy cores.
    result = subprocess.run([sys.executable, "-m", "worldmodels.cli", "run", "--preset",
                             "carracing-cpu-full-dream-then-real", "--run", str(run), *tiniest],
                            capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    config = load_config(file=run / "config.yaml")
    assert config.env.max_episode_steps is None and gymnasium.spec(config.env.id).max_episode_steps == 1000
    assert "in the dream up to generation 1, then in the real env" in result.stdout
    log = list(csv.DictReader((run / "controller" / "log.csv").open()))
    assert int(log[0]["env_steps"]) == 0 and 0 < int(log[1]["env_steps"]) <= 4 * 1000  # dream, then real
    eval_steps = [int(row["eval_env_steps"]) for row in log]
    assert all(0 < steps <= 1000 for steps in eval_steps)
    assert max(eval_steps) > 300  # longer than the 300-step episodes of carracing-cpu
    evaluations = rows(run / "controller" / "eval.csv")
    assert [(row["generation"], row["env"]) for row in evaluations] == [("0", "dream"), ("0", "real"), ("1", "real")]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["controller_trained_in"] == "dream_then_real"
    counted = sum(int(row["env_steps"]) + int(row["eval_env_steps"]) for row in log)
    assert summary["controller_env_steps"] == counted == int(evaluations[-1]["env_steps_total"])
    assert summary["env_steps_total"] == summary["frames_collected"] + counted
    assert summary["score"]["episodes"] == 2
    for name in ("real_steps_curve.png", "evaluation_curves.png", "episode.gif", "dream.gif"):
        assert (run / name).is_file(), name
