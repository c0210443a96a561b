"""The command line's own behaviour: help texts, argument checks, config.yaml left as it was when a command fails
on its input, controller files, and settings that follow the env."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import pytest

from worldmodels.checkpoint import save_untrained_checkpoint
from worldmodels.cli import build_parser, main
from worldmodels.commands import run_config, undo_config_write
from worldmodels.config import ConfigError, load_config, save_config
from worldmodels.controller import load_params
from worldmodels.dream import dream_max_steps, settings_from_config


def help_text(capsys, *command: str) -> str:
    """The command's --help, its words joined by single spaces (argparse wraps lines to the terminal's width)."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["config", "collect"])
def test_help_of_a_command_without_run_does_not_name_run(capsys, command):
    assert "--run" not in help_text(capsys, command) and "RUN/config.yaml" not in help_text(capsys, command)


@pytest.mark.parametrize("command", ["train-vae", "evaluate", "run", "temperature-sweep", "dream"])
def test_help_of_a_command_with_run_names_its_saved_config(capsys, command):
    text = help_text(capsys, command)
    assert "--run RUN" in text and "RUN/config.yaml when --run holds one" in text


@pytest.mark.parametrize(("argv", "message"), [
    (["evaluate", "--run", "r", "--episodes", "0"], "argument --episodes: must be >= 1, got 0"),
    (["calibrate", "--run", "r", "--episodes", "-3"], "argument --episodes: must be >= 1, got -3"),
    (["run", "--run", "r", "--iterations", "two"], "argument --iterations: 'two' is not an integer"),
])
def test_counts_below_one_are_refused_before_anything_runs(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_command_failing_on_its_input_leaves_no_config_in_a_new_run_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train-vae", "--preset", "carracing-tiny", "--data", str(tmp_path / "missing"),
                 "--run", str(run)]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    assert not run.exists()


def test_a_command_failing_on_its_input_puts_the_runs_config_back(tmp_path, capsys):
    run = tmp_path / "run"
    save_config(load_config("carracing-tiny"), run / "config.yaml")
    before = (run / "config.yaml").read_text()
    assert main(["train-mdnrnn", "--run", str(run), "--data", str(tmp_path / "missing"),
                 "--set", "mdnrnn.learning_rate=0.5"]) == 2
    assert "error:" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == before


@pytest.mark.parametrize("wrote_output", [False, True])
def test_config_is_put_back_only_when_the_command_wrote_nothing_else(tmp_path, wrote_output):
    run = tmp_path / "run"
    save_config(load_config("carracing-tiny"), run / "config.yaml")
    before = (run / "config.yaml").read_text()
    args = build_parser().parse_args(["train-vae", "--run", str(run), "--data", "d", "--set", "vae.batch_size=8"])
    run_config(args)
    if wrote_output:  # e.g. a checkpoint written under the new settings before a later failure
        (run / "vae.pt").write_bytes(b"")
    undo_config_write(args)
    after = (run / "config.yaml").read_text()
    assert (after != before and "batch_size: 8" in after) if wrote_output else (after == before)


def run_args(run: Path, *settings: str, preset: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(run=run, config=None, preset=preset, set=list(settings))


def test_a_run_folder_refuses_a_config_that_would_reshape_a_model_it_holds(tmp_path):
    run = tmp_path / "run"
    save_untrained_checkpoint(run / "vae.pt", "vae", {"z_size": 32})  # no config.yaml: the shape is the file's
    with pytest.raises(ConfigError, match=r"holds vae.pt, built with vae.z_size=32 \(now 16\): it would not fit. Set "
                                          "those settings as the models were built, or use a new --run folder"):
        run_config(run_args(run, "vae.z_size=16", preset="carracing-tiny"))
    assert not (run / "config.yaml").exists()
    assert run_config(run_args(run, "vae.learning_rate=0.5", preset="carracing-tiny")).vae.learning_rate == 0.5
    save_config(load_config("carracing-tiny", ["vae.z_size=16"]), run / "config.yaml")  # disagrees with vae.pt
    with pytest.raises(ConfigError, match=rf"holds vae.pt, built with vae.z_size=32 \(now 16\): it would not fit. Pass "
                                          rf"--config {run / 'config.yaml'}"):
        run_config(run_args(run))
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": 32, "action_size": 3, "hidden_size": 256})
    with pytest.raises(ConfigError, match=r"vae.pt, built with vae.z_size=32 \(now 8\), vae.encoder='published' "
                                          r"\(now 'nature'\); mdnrnn.pt, built with vae.z_size=32 \(now 8\), "
                                          r"mdnrnn.hidden_size=256 \(now 64\)"):
        run_config(run_args(run, "vae.z_size=8", "vae.encoder=nature", "mdnrnn.hidden_size=64",
                            preset="carracing-tiny"))


def test_a_run_holding_a_controller_refuses_a_controller_of_another_shape(tmp_path):
    run = tmp_path / "run"
    run_config(run_args(run, preset="carracing-tiny"))  # saves RUN/config.yaml
    save_untrained_checkpoint(run / "mdnrnn.pt", "mdnrnn", {"z_size": 32, "action_size": 3, "hidden_size": 256})
    (run / "controller").mkdir()
    np.save(run / "controller" / "mean.npy", np.zeros(867, np.float32))
    assert run_config(run_args(run, "cmaes.popsize=8")).cmaes.popsize == 8
    with pytest.raises(ConfigError, match=r"controller/mean.npy, built with 867 parameters \(now 11683, from "
                                          r"controller.inputs"):
        run_config(run_args(run, "controller.hidden_units=40"))


def test_controller_files_are_checked_and_never_unpickled(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.arange(5, dtype=np.float64))
    params = load_params(path, 5)
    assert params.dtype == np.float32 and params.shape == (5,)
    with pytest.raises(FileNotFoundError, match="controller parameters .*nope.npy do not exist"):
        load_params(tmp_path / "nope.npy")
    with pytest.raises(ValueError, match="hold 5 values, but this run's controller has 6"):
        load_params(path, 6)
    np.save(path, np.array([1.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="1 non-finite values"):
        load_params(path)
    np.save(path, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"one float vector \(D,\), got \(2, 3\)"):
        load_params(path)
    marker = tmp_path / "ran"
    np.save(path, np.array([_Marker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable .npy file"):
        load_params(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_Marker(marker)))
    with pytest.raises(ValueError, match="not a readable .npy file"):
        load_params(path)
    assert not marker.exists()


class _Marker:
    """Unpickling this creates a file: the proof that a loader ran code from a data file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize(("preset", "overrides", "steps"), [
    ("carracing-tiny", [], 100),  # the tiny preset's 100-step episodes, not CarRacing's 1000
    ("carracing", [], 1000),
    ("doom-tiny", [], 150),  # set in the preset
    ("carracing-tiny", ["dream.max_steps=7"], 7),
    ("carracing", ["env.id=worldmodels/TakeCover-v0"], 2100),
])
def test_dreams_last_as_long_as_the_real_episodes_unless_set(preset, overrides, steps):
    config = load_config(preset, overrides)
    assert dream_max_steps(config) == steps == settings_from_config(config).max_steps


def test_a_worker_failure_is_one_line_with_the_error_it_ended_in(monkeypatch, tmp_path, capsys):
    from rollouts.collect import CollectError

    def fail(config, out, policy):
        raise CollectError("episode 3 (seed 3) failed on all 4 attempts; last error: ray::EpisodeWorker.run()\n"
                           "Traceback (most recent call last):\n  File \"x.py\", line 1, in run\n"
                           "rollouts.storage.EpisodeFileError: episode 3: rewards hold 1 non-finite values")

    monkeypatch.setattr("rollouts.ray_cluster.init_ray", lambda *args: None)
    monkeypatch.setattr("worldmodels.stages.collect_stage", fail)
    assert main(["collect", "--preset", "carracing-tiny", "--out", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == ("worldmodels collect: error: episode 3 (seed 3) failed on all 4 attempts; last error: "
                    "ray::EpisodeWorker.run() ... rollouts.storage.EpisodeFileError: episode 3: rewards hold 1 "
                    "non-finite values")
    assert main(["-v", "collect", "--preset", "carracing-tiny", "--out", str(tmp_path)]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_help_and_presets_load_neither_torch_nor_ray():
    """Every command imports what it runs: building the parser (``--help``, ``presets``) must stay light."""
    import subprocess
    import sys

    code = ("import sys; from worldmodels.cli import main; main(['presets']); "
            "print(sorted(m for m in ('torch', 'ray', 'cma', 'gymnasium') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "carracing-tiny" in result.stdout and result.stdout.strip().splitlines()[-1] == "[]"
