"""A tiny end-to-end dream run on the CPU: collect, V, encode, M with reward and done heads, CMA-ES in the
batched dream (fitness rises), the real-env evaluation of the mean beside it, and the dream GIF."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from PIL import Image


def worldmodels(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "worldmodels.cli", *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_tiny_dream_pipeline_completes_and_dream_fitness_rises(tmp_path: Path):
    run, episodes = tmp_path / "run", tmp_path / "run" / "episodes"
    tiny = ["--preset", "carracing-tiny", "--set", "env.max_episode_steps=60", "--set", "collect.episodes=4"]
    worldmodels("collect", *tiny, "--out", str(episodes))
    worldmodels("train-vae", *tiny, "--set", "vae.epochs=2", "--data", str(episodes), "--run", str(run))
    worldmodels("encode", "--data", str(episodes), "--run", str(run))
    worldmodels("train-mdnrnn", "--data", str(episodes), "--run", str(run), "--set", "mdnrnn.reward_head=true",
                "--set", "mdnrnn.done_head=true", "--set", "mdnrnn.steps=100")
    train = worldmodels("train-controller", "--env", "dream", "--run", str(run), "--temperature", "1.15",
                        "--set", "cmaes.generations=8", "--set", "cmaes.popsize=8", "--set", "cmaes.rollouts=4",
                        "--set", "cmaes.eval_every=8", "--set", "dream.max_steps=60")
    assert "mean solution in dream" in train.stdout and "mean solution in real" in train.stdout
    log = list(csv.DictReader((run / "controller" / "log.csv").open()))
    assert len(log) == 8
    first, last = float(log[0]["mean_fitness"]), max(float(row["mean_fitness"]) for row in log[-3:])
    assert last > first, f"dream fitness did not rise: {[row['mean_fitness'] for row in log]}"
    evaluations = {row["env"]: row for row in csv.DictReader((run / "controller" / "eval.csv").open())}
    assert set(evaluations) == {"dream", "real"}
    worldmodels("dream", "--run", str(run), "--gif", str(tmp_path / "dream.gif"))
    with Image.open(tmp_path / "dream.gif") as gif:
        assert gif.size == (2 * 2 * 64 + 2 * 2, 2 * 64) and gif.n_frames >= 2
