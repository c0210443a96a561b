"""`worldmodels run` end to end on tiny presets (Doom: controller trained in the dream; CarRacing: in the real
env), a re-run that skips finished stages and resumes a raised budget, the temperature sweep's table and the
calibration; the iterative procedure's second round is marked slow."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rollouts.storage import episode_path, read_episode_meta
from worldmodels.config import load_config

DOOM_TINIER = ["--preset", "doom-tiny", "--set", "collect.episodes=4", "--set", "env.max_episode_steps=80",
               "--set", "vae.epochs=1", "--set", "mdnrnn.steps=40", "--set", "cmaes.popsize=4",
               "--set", "cmaes.rollouts=2", "--set", "cmaes.generations=1", "--set", "cmaes.eval_every=1",
               "--set", "cmaes.eval_episodes=2", "--set", "dream.max_steps=80", "--set", "evaluate.episodes=2",
               "--set", "trust.episodes=2"]
OUTPUTS = ["episodes/manifest.json", "vae.pt", "mdnrnn.pt", "controller/mean.npy", "evaluation.json", "episode.gif",
           "vae_curves.png", "mdnrnn_curves.png", "controller_curves.png", "evaluation_curves.png", "dream.gif",
           "summary.json", "config.yaml"]


GIF_FRAME_MS = 40  # worldmodels.pictures.write_gif at 25 frames/s
CURVES_SIZE = (600, 350)  # worldmodels.pictures.new_figure: 6 x 3.5 inches at 100 dpi


def gif_size_and_frames(path: Path) -> tuple[tuple[int, int], int]:
    """A GIF's size and how many frames were written to it (PIL merges a repeated frame into the one before it,
    adding up their durations, so the count is the total duration over one frame's)."""
    with Image.open(path) as gif:
        duration = 0
        for index in range(gif.n_frames):
            gif.seek(index)
            duration += gif.info["duration"]
        return gif.size, duration // GIF_FRAME_MS


def worldmodels(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "worldmodels.cli", *args], check=False, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def doom_run(tmp_path_factory) -> tuple[Path, str]:
    pytest.importorskip("vizdoom")
    run = tmp_path_factory.mktemp("doom") / "run"
    return run, worldmodels("run", *DOOM_TINIER, "--run", str(run))


def test_doom_pipeline_runs_every_stage_and_reports_the_real_score(doom_run):
    run, stdout = doom_run
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["controller_trained_in"] == "dream" and summary["score"]["episodes"] == 2
    # C's candidates never saw the real game; the mean solution's real evaluation (2 episodes of at most 80 steps) did.
    log = list(csv.DictReader((run / "controller" / "log.csv").open()))
    assert summary["frames_collected"] > 4 and {row["env_steps"] for row in log} == {"0"}
    assert 0 < summary["controller_env_steps"] == sum(int(row["eval_env_steps"]) for row in log) <= 2 * 80
    assert [stage["name"] for stage in summary["stages"]] == ["collect", "train-vae", "encode", "train-mdnrnn",
                                                             "train-controller", "evaluate", "pictures"]
    assert f"{summary['score']['mean']:.1f} +- {summary['score']['std']:.1f} over 2 real episodes" in stdout
    # Before evolving in the dream: 5 fixed controllers and a 10-generation dream search's mean scored on 2 seeds
    # each, summed up and printed.
    trust = json.loads((run / "calibration_trust.json").read_text())
    assert (trust["controllers"], trust["episodes"], trust["min_rank_correlation"]) == (6, 2, 0.5)
    assert f"run: train-controller: dream trust: {trust['verdict']} (6 controllers x 2 episodes" in stdout
    rows = json.loads((run / "calibration.json").read_text())["rows"]
    assert rows[-1]["name"] == "dream search, 10 generations" and rows[0]["name"] == "zeros"
    assert trust["provenance"]["settings"]["trust_probe"]["generations"] == 10
    assert stdout.index("dream trust: ") < stdout.index("run: train-controller: generation")
    envs = {row["env"] for row in csv.DictReader((run / "controller" / "eval.csv").open())}
    assert envs == {"dream", "real"}
    # One real episode of at most 80 steps (81 frames, 64x64 shown at 2x), and the dream beside its real start.
    size, frames = gif_size_and_frames(run / "episode.gif")
    assert size == (128, 128) and 2 <= frames <= 81, (size, frames)
    size, frames = gif_size_and_frames(run / "dream.gif")
    assert size == (2 * 2 * 64 + 2 * 2, 2 * 64) and 2 <= frames <= 81, (size, frames)
    for name in ("vae_curves.png", "mdnrnn_curves.png", "controller_curves.png", "evaluation_curves.png"):
        with Image.open(run / name) as image:
            assert image.size == CURVES_SIZE, name


def test_a_rerun_skips_finished_stages_and_continues_a_raised_budget(doom_run):
    run, _ = doom_run
    # No --preset: the run's saved config; one more generation than before.
    stdout = worldmodels("run", "--run", str(run), "--set", "cmaes.generations=2")
    assert "collect: 0 episodes gathered, 4 already on disk" in stdout
    assert "train-vae: already finished" in stdout and "train-mdnrnn: already finished" in stdout
    assert "1 generations run, 2 in total" in stdout
    assert "it scored this V and M)" in stdout  # the trust summary of this M is reused, not scored again
    log = list(csv.DictReader((run / "controller" / "log.csv").open()))
    assert [row["generation"] for row in log] == ["0", "1"]


@pytest.mark.slow
def test_iterations_gather_with_the_controller_and_train_m_and_c_further(doom_run):
    run, _ = doom_run
    worldmodels("run", "--run", str(run), "--set", "cmaes.generations=2")  # what the re-run test leaves, if it ran
    stdout = worldmodels("run", "--run", str(run), "--iterations", "2", "--set", "iterate.episodes=2")
    assert "train-mdnrnn: already finished" in stdout  # round 1 is done
    assert "collect (round 2): 2 episodes gathered, 0 already on disk" in stdout
    manifest = json.loads((run / "episodes" / "manifest.json").read_text())
    assert [entry["index"] for entry in manifest["entries"]] == list(range(6))
    assert [read_episode_meta(episode_path(run / "episodes", i))["policy"] for i in (3, 4)] == [
        "repeated_random", "controller of round 1"]
    round2 = run / "iterations" / "2"
    for name in ("vae.pt", "mdnrnn.pt", "controller/mean.npy", "evaluation.json", "config.yaml", "dream.gif",
                 "calibration_trust.json"):  # the dream of round 2's M judged before C evolves in it
        assert (round2 / name).is_file(), name
    steps = [int(row["step"]) for row in csv.DictReader((round2 / "mdnrnn_log.csv").open())]
    assert steps[-1] == 80 and max(int(row["step"]) for row in csv.DictReader((run / "mdnrnn_log.csv").open())) == 40
    log = list(csv.DictReader((round2 / "controller" / "log.csv").open()))
    assert [row["generation"] for row in log] == ["0", "1", "2", "3"]  # round 1's 2 generations, then 2 more
    summary = json.loads((run / "summary.json").read_text())
    assert [entry["round"] for entry in summary["rounds"]] == [1, 2]
    assert summary["score"] == summary["rounds"][1]["score"] and summary["rounds"][1]["generations"] == 4
    assert "run: round 1: " in stdout
    again = worldmodels("run", "--run", str(run), "--iterations", "2", "--set", "iterate.episodes=2")
    assert "collect (round 2): 0 episodes gathered, 2 already on disk" in again
    assert "train-mdnrnn (round 2): already finished" in again and "0 generations run, 4 in total" in again


def test_temperature_sweep_writes_the_papers_table(doom_run):
    run, _ = doom_run
    run_config = (run / "config.yaml").read_text()
    stdout = worldmodels("temperature-sweep", "--run", str(run), "--temperatures", "0.5", "1.15",
                         "--set", "cmaes.generations=1", "--set", "cmaes.popsize=2")
    assert (run / "config.yaml").read_text() == run_config  # an analysis: the run's own config is left alone
    assert load_config(file=run / "sweep" / "config.yaml").cmaes.popsize == 2
    table = (run / "temperature_sweep.md").read_text().splitlines()
    assert table[:2] == ["| temperature | dream score | real score | paper: dream | paper: real |",
                         "|---|---|---|---|---|"]
    assert [line.split("|")[1].strip() for line in table[2:4]] == ["0.5", "1.15"]
    assert all(" +- " in cell for line in table[2:4] for cell in line.split("|")[2:4])
    assert [line.split("|")[4:6] for line in table[2:4]] == [[" 2060 +- 277 ", " 196 +- 50 "],
                                                            [" 918 +- 546 ", " 1092 +- 556 "]]  # the paper's rows
    rows = json.loads((run / "temperature_sweep.json").read_text())
    assert [row["temperature"] for row in rows] == [0.5, 1.15]
    assert all(len(row["real"]["returns"]) == 2 and len(row["dream"]["returns"]) == 2 for row in rows)
    assert table[2] in stdout
    # a rerun resumes: each temperature's search is finished and its two scores are read back, not run again
    scores = sorted((run / "sweep").glob("tau_*/*_score.json"))
    assert [path.name for path in scores] == ["dream_score.json", "real_score.json"] * 2
    stamps = [path.stat().st_mtime_ns for path in scores]
    again = worldmodels("temperature-sweep", "--run", str(run), "--temperatures", "0.5", "1.15",
                        "--set", "cmaes.generations=1", "--set", "cmaes.popsize=2")
    assert [path.stat().st_mtime_ns for path in scores] == stamps
    assert (run / "temperature_sweep.md").read_text().splitlines() == table and table[2] in again
    worldmodels("temperature-sweep", "--run", str(run), "--temperatures", "0.5", "--set", "cmaes.generations=1",
                "--set", "cmaes.popsize=2", "--set", "evaluate.seed=7")  # other seeds: scored again
    tau = run / "sweep" / "tau_0.5"
    assert json.loads((tau / "real_score.json").read_text())["seeds"] == [7, 8]
    stamps = {path.name: path.stat().st_mtime_ns for path in tau.glob("*_score.json")}
    worldmodels("temperature-sweep", "--run", str(run), "--temperatures", "0.5", "--set", "cmaes.generations=1",
                "--set", "cmaes.popsize=2", "--set", "evaluate.seed=7", "--set", "dream.done_mode=sample")
    dream_score = json.loads((tau / "dream_score.json").read_text())
    assert dream_score["provenance"]["settings"]["dream"]["done_mode"] == "sample"  # the dream scored again
    assert (tau / "real_score.json").stat().st_mtime_ns == stamps["real_score.json"]  # the game did not change


def test_a_rerun_with_other_evaluation_seeds_evaluates_again(doom_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(doom_run[0], run)
    before = json.loads((run / "evaluation.json").read_text())
    stdout = worldmodels("run", "--run", str(run), "--set", "evaluate.seed=7")
    after = json.loads((run / "evaluation.json").read_text())
    assert before["seeds"] == [1000000, 1000001] and after["seeds"] == [7, 8]
    assert "over 2 real episodes (seeds 7..8)" in stdout
    assert json.loads((run / "summary.json").read_text())["score"]["first_seed"] == 7


def test_the_dream_trust_warning_follows_the_thresholds(doom_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(doom_run[0], run)
    trust = json.loads((run / "calibration_trust.json").read_text())
    strict = worldmodels("run", "--run", str(run), "--set", "cmaes.generations=5",
                         "--set", "trust.min_rank_correlation=1.01", "--set", "trust.max_gap_fraction=0")
    if trust["rank_correlation"] is None and trust["real_spread"] == 0:
        assert "run: train-controller: WARNING: the dream's trust cannot be judged" in strict
    else:
        assert "run: train-controller: WARNING: the dream is not to be trusted" in strict
    assert "(trusted from 1.01)" in strict and "it scored this V and M)" in strict
    lenient = worldmodels("run", "--run", str(run), "--set", "cmaes.generations=6",
                          "--set", "trust.min_rank_correlation=-1", "--set", "trust.max_gap_fraction=1.0e9",
                          "--set", "trust.min_probe_transfer=-.inf")
    assert "(trusted from -1)" in lenient and "not to be trusted" not in lenient
    assert json.loads((run / "calibration_trust.json").read_text()) == trust  # judged again, not scored again


def test_carracing_pipeline_trains_the_controller_in_the_real_env(tmp_path):
    run = tmp_path / "run"
    stdout = worldmodels("run", "--preset", "carracing-tiny", "--run", str(run), "--set", "collect.episodes=2",
                         "--set", "env.max_episode_steps=30", "--set", "vae.epochs=1", "--set", "mdnrnn.steps=20",
                         "--set", "cmaes.generations=1", "--set", "cmaes.eval_every=5", "--set", "evaluate.episodes=2")
    for name in OUTPUTS:
        if name != "evaluation_curves.png":  # no evaluation of the mean within one generation here
            assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["controller_trained_in"] == "real"
    size, frames = gif_size_and_frames(run / "episode.gif")
    assert size == (128, 128) and 2 <= frames <= 31, (size, frames)  # one episode of at most 30 steps
    assert summary["controller_env_steps"] == 4 * 2 * 30  # popsize x rollouts x 30 steps
    assert "over 2 real episodes" in stdout


def test_calibrate_scores_fixed_controllers_in_the_dream_and_the_real_env(doom_run, tmp_path):
    run, _ = doom_run
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros(np.load(run / "controller" / "mean.npy").shape, np.float32))
    stdout = worldmodels("calibrate", "--run", str(run), "--episodes", "3", "--scales", "0.5", "--random", "1",
                         "--params", str(zeros), str(run / "controller" / "mean.npy"), "--probe-generations", "2",
                         "--set", f"cmaes.init_params={zeros}")  # the probe's start, already a row: not scored twice
    table = (run / "calibration.md").read_text().splitlines()
    assert table[:2] == ["| controller | dream score | real score | dream - real |", "|---|---|---|---|"]
    names = [line.split("|")[1].strip() for line in table[2:7]]
    assert names == ["zeros", "random N(0, 0.5^2) #0", str(zeros), str(run / "controller" / "mean.npy"),
                     "dream search, 2 generations"]
    document = json.loads((run / "calibration.json").read_text())
    assert [row["name"] for row in document["rows"]] == names
    rows = {row["name"]: row for row in document["rows"]}
    assert all(row["real"]["seeds"] == [2000000, 2000001, 2000002] for row in rows.values())  # trust.seed, not evaluate.seed
    # The built-in zero controller and a zeros file are the same policy on the same seeds: same returns.
    assert rows["zeros"]["real"]["returns"] == rows[str(zeros)]["real"]["returns"]
    assert rows["zeros"]["dream"]["returns"] == rows[str(zeros)]["dream"]["returns"]
    assert all(row["gap"] == pytest.approx(row["dream"]["mean"] - row["real"]["mean"]) for row in rows.values())
    # The rank correlation is Spearman's rho of the mean returns written beside it (ties share their mean rank).
    means = {side: [float(np.mean(row[side]["returns"])) for row in document["rows"]] for side in ("dream", "real")}
    if any(len(set(values)) == 1 for values in means.values()):
        expected = None
    else:
        ranks = [[np.mean([j + 1 for j, w in enumerate(sorted(values)) if w == v]) for v in values]
                 for values in means.values()]
        expected = float(np.corrcoef(*ranks)[0, 1])
    rho = document["rank_correlation"]
    assert rho == (None if expected is None else pytest.approx(expected)), (rho, means)
    described = "undefined (fewer than 2 controllers, or equal means)" if rho is None else f"{rho:.2f}"
    assert f"Spearman rank correlation of dream and real means: {described}." in stdout
    assert document["temperature"] == 1.15
    with Image.open(run / "calibration.png") as image:
        assert image.size == (600, 450)  # 6 x 4.5 inches at 100 dpi
    trust = json.loads((run / "calibration_trust.json").read_text())
    assert trust["rank_correlation"] == rho and (trust["controllers"], trust["episodes"]) == (5, 3)
    gaps = {name: row["gap"] for name, row in rows.items()}
    assert trust["largest_gap"] == pytest.approx(max(gaps.values())) and trust["largest_gap"] == pytest.approx(
        gaps[trust["largest_gap_controller"]])
    assert f"dream trust: {trust['verdict']} (5 controllers x 3 episodes, dream at temperature 1.15)" in stdout
    assert document["probe"] == ["dream search, 2 generations", str(zeros)]
    probe, start = (rows[name] for name in document["probe"])
    assert (trust["probe_dream_gain"], trust["probe_real_gain"]) == pytest.approx(
        (probe["dream"]["mean"] - start["dream"]["mean"], probe["real"]["mean"] - start["real"]["mean"]))
    assert "dream search's gain over its start:" in stdout
    assert ("WARNING: the dream" in stdout) == (trust["verdict"] != "trusted")
