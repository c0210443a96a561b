"""One writing command per run folder.

A command that trains into a run folder (``train-controller``, ``run``, ``train-mdnrnn``, ``temperature-sweep``, ...)
holds an exclusive advisory lock (``flock``) on the folder itself while it runs. A second such command on the same
folder is refused at once, before it writes anything: two CMA-ES searches resuming from one ``cmaes_state.npz`` would
both write every later generation, twice, into the same log. The lock lives on the folder's open descriptor, so the
operating system drops it when the process ends, however it ends: no lock file is left behind to clean up.
Commands that only read a run and write one report at the end (``evaluate``, ``calibrate``, ``dream``) take no lock.
POSIX only (Linux, macOS), as the toolkit is.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class RunFolderInUseError(Exception):
    """Another process holds the run folder's lock."""


@dataclass
class RunFolderLock:
    """The lock on one run folder, held until :meth:`release` or the process's end (``descriptor`` -1: none could
    be taken, the folder is unguarded)."""

    folder: Path
    """The folder, resolved."""
    descriptor: int
    created: bool = False
    """Whether taking the lock created the folder: :meth:`release` then removes it if the command left it empty."""

    def release(self) -> None:
        """Drop the lock (closing the folder's descriptor), and remove the folder if taking the lock created it and
        it is still empty (a command refused on its input leaves no empty folder behind); a second call does
        nothing."""
        if _held.get(self.folder) is not self:
            return
        del _held[self.folder]
        os.close(self.descriptor)
        if self.created:
            try:
                self.folder.rmdir()  # only an empty folder: never anything the command wrote
            except OSError:
                pass


_held: dict[Path, RunFolderLock] = {}
"""The locks this process holds, by folder: taking one again returns it (a flock taken through a second descriptor
would conflict with the first, even in the same process)."""


def lock_run_folder(folder: Path) -> RunFolderLock:
    """Create ``folder`` if needed and take its lock without waiting (the lock this process already holds on it,
    if it does).

    On a file system that cannot lock folders it logs a warning and returns a lock that guards nothing.

    :raises RunFolderInUseError: another process holds it, naming the folder and what to do.
    """
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder.resolve()
    if resolved in _held:
        return _held[resolved]
    descriptor = os.open(resolved, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise RunFolderInUseError(
            f"run folder {folder} is in use: another worldmodels command is training into it (`fuser -v {folder}` "
            "names its process). Wait for it to end or stop it, or pass another --run") from None
    except OSError as err:  # a file system without flock on folders (some NFS set-ups): run unguarded
        os.close(descriptor)
        log.warning("could not lock run folder %s (%s): a second command writing into it at the same time would not "
                    "be refused", folder, err)
        return RunFolderLock(resolved, -1)
    _held[resolved] = RunFolderLock(resolved, descriptor, created)
    return _held[resolved]
