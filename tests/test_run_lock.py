"""One writing command per run folder: a second one is refused in one line and writes nothing; the lock goes with
the process that held it."""

from __future__ import annotations

import errno
import fcntl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from worldmodels.cli import main
from worldmodels.config import load_config, save_config
from worldmodels.run_lock import RunFolderInUseError, lock_run_folder

HOLD = ("import sys, time; from pathlib import Path; from worldmodels.run_lock import lock_run_folder; "
        "lock_run_folder(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)")


@pytest.fixture
def held_elsewhere(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A run folder (with a config.yaml) whose lock another process holds."""
    run = tmp_path / "run"
    save_config(load_config("carracing-tiny"), run / "config.yaml")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield run, holder
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_second_command_training_into_a_folder_is_refused_and_writes_nothing(held_elsewhere, capsys):
    run, _ = held_elsewhere
    before = (run / "config.yaml").read_text()
    assert main(["train-controller", "--run", str(run), "--set", "cmaes.popsize=6"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"worldmodels train-controller: error: run folder {run} is in use: another worldmodels "
                           "command is training into it")
    assert line.endswith("Wait for it to end or stop it, or pass another --run")
    assert (run / "config.yaml").read_text() == before
    assert sorted(path.name for path in run.iterdir()) == ["config.yaml"]
    assert main(["collect", "--preset", "carracing-tiny", "--out", str(run)]) == 2
    assert f"run folder {run} is in use" in capsys.readouterr().err


def test_the_lock_goes_with_the_process_that_held_it(held_elsewhere, capsys):
    run, holder = held_elsewhere
    with pytest.raises(RunFolderInUseError):
        lock_run_folder(run)
    holder.kill()
    holder.wait(timeout=30)
    lock = lock_run_folder(run)  # killed, not released: the operating system dropped its lock
    assert lock_run_folder(run) is lock  # taken again by the process that holds it: the same lock
    lock.release()
    lock.release()


def test_a_command_releases_the_folder_when_it_ends(tmp_path, capsys):
    run = tmp_path / "run"
    save_config(load_config("carracing-tiny"), run / "config.yaml")
    assert main(["train-mdnrnn", "--run", str(run), "--data", str(tmp_path / "missing")]) == 2
    assert "missing does not exist" in capsys.readouterr().err
    taker = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(run)],
                           capture_output=True, text=True, timeout=120)
    assert taker.returncode == 0 and taker.stdout.strip() == "held", taker.stderr


def test_a_file_system_without_folder_locks_runs_unguarded_with_a_warning(tmp_path, monkeypatch, caplog):
    def refuse(descriptor: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    lock = lock_run_folder(tmp_path / "run")
    assert lock.descriptor == -1 and "could not lock run folder" in caplog.text and "No locks available" in caplog.text
    lock.release()


def test_a_folder_the_lock_created_goes_again_only_when_left_empty(tmp_path):
    empty, written, existing = tmp_path / "empty", tmp_path / "written", tmp_path / "existing"
    existing.mkdir()
    locks = [lock_run_folder(folder) for folder in (empty, written, existing)]
    (written / "config.yaml").write_text("preset: doom-tiny\n")
    for lock in locks:
        lock.release()
    assert not empty.exists()
    assert [path.name for path in written.iterdir()] == ["config.yaml"]
    assert existing.is_dir()  # there before the command: never removed
