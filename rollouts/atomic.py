"""Atomic file writes: write to a temporary name in the same folder, then rename over the target.

A reader never sees a half-written file and a crash mid-write leaves the old file (or none) in place. The file gets
the permissions an ordinary write would give it: a new one the process's umask default (0644 under umask 022, so a
run folder stays readable to the group, TensorBoard or a web server), a replaced one the permissions it had.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success give it ``target``'s permissions (if ``target``
    exists) and rename it to ``target``.

    On an exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = None
    tmp = _create_beside(target)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)  # after the write: a read-only target is replaced by a read-only file
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _create_beside(target: Path) -> Path:
    """Create an empty file of a fresh hidden name beside ``target`` with a new file's permissions (0666 less the
    umask, as an ordinary write gives; ``tempfile.mkstemp`` would give 0600)."""
    while True:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))
