"""Atomic writes: all or nothing, and the permissions an ordinary write would give."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollouts.atomic import atomic_path, atomic_write_text


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process's umask after a test that sets it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_umask_default(tmp_path, umask, mask, expected):
    os.umask(mask)
    atomic_write_text(tmp_path / "config.yaml", "preset: doom-tiny\n")
    assert mode(tmp_path / "config.yaml") == expected


def test_a_replaced_file_keeps_its_permissions(tmp_path, umask):
    os.umask(0o022)
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "old\n")
    target.chmod(0o600)
    atomic_write_text(target, "new\n")
    assert (target.read_text(), mode(target)) == ("new\n", 0o600)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "mdnrnn_log.csv"
    atomic_write_text(target, "step,loss\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("killed mid-write")
    assert [path.name for path in tmp_path.iterdir()] == ["mdnrnn_log.csv"]
    assert target.read_text() == "step,loss\n"


def test_a_read_only_file_is_replaced_by_a_read_only_file(tmp_path):
    target = tmp_path / "evaluation.json"
    atomic_write_text(target, "{}\n")
    target.chmod(0o444)
    atomic_write_text(target, '{"mean": 1.0}\n')
    assert (target.read_text(), mode(target)) == ('{"mean": 1.0}\n', 0o444)
