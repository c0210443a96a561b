"""TensorBoard event files: each stage's scalars in RUN/tensorboard/<stage>/, written best effort.

Tags are ``<prefix>/<name>`` (``vae/loss``, ``cmaes/fitness_mean``; docs/tensorboard.md lists them), against the
stage's own counter: the training step, the CMA-ES generation, the episode. Read them with
``tensorboard --logdir RUN/tensorboard`` (or ``--logdir RUN`` to include a sweep's or a later round's).

A stage (re)started at step s makes a new event file at its first write, with ``purge_step=s``: TensorBoard then
drops what an earlier, interrupted call wrote at steps >= s (the steps redone after the last checkpoint), so a
resumed run's curves continue with each step once.

The event files are logs, not state: a writer that cannot be opened or written (disk full, read-only folder)
logs one warning and drops the rest of its scalars, and the stage goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from worldmodels.run_layout import TENSORBOARD_DIR

log = logging.getLogger(__name__)

EVENT_FILE_PREFIX = "events.out.tfevents."
"""Event files are named ``events.out.tfevents.<unix seconds>.<host>.<pid>.<counter>``."""


def event_dir(run_dir: str | Path, stage: str) -> Path:
    """The folder of ``stage``'s event files in run folder ``run_dir``: RUN/tensorboard/<stage>."""
    return Path(run_dir) / TENSORBOARD_DIR / stage


class ScalarLog:
    """One stage's TensorBoard scalars, tagged ``<prefix>/<name>``; use it as a context manager (or call
    :meth:`close`). Nothing it does raises: a failure logs a warning and turns the log off."""

    def __init__(self, log_dir: str | Path, prefix: str, first_step: int) -> None:
        """A log whose event file, made in ``log_dir`` at the first :meth:`write`, hides what earlier files there
        hold at steps >= ``first_step`` (a call that writes nothing leaves the folder as it was)."""
        self.log_dir, self.prefix, self.first_step = Path(log_dir), prefix, first_step
        self._writer: Any = None
        self._off = False  # closed, or failed: write nothing more

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """Log each of ``values`` as ``<prefix>/<name>`` at ``step``, and flush them to the file."""
        if self._writer is None and not self._off:
            self._open()
        if self._writer is None:
            return
        try:
            for name, value in values.items():
                self._writer.add_scalar(f"{self.prefix}/{name}", float(value), step)
            self._writer.flush()
        except Exception as err:  # noqa: BLE001
            self._fail("write to", err)

    def close(self) -> None:
        """Flush and close the event file; later writes are dropped."""
        self._off = True
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as err:  # noqa: BLE001
                self._fail("close", err)

    def __enter__(self) -> ScalarLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _open(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter  # here: only writers pay for importing torch

            _wait_for_a_later_file_name(self.log_dir)
            self._writer = SummaryWriter(str(self.log_dir), purge_step=self.first_step)
        except Exception as err:  # noqa: BLE001 (a log must not stop the stage, whatever the cause)
            self._fail("open", err)

    def _fail(self, action: str, err: Exception) -> None:
        log.warning("TensorBoard: could not %s the event file in %s (%s: %s); the %s scalars of this call are not "
                    "written from here on (the CSV logs are)", action, self.log_dir, type(err).__name__, err,
                    self.prefix)
        self._off = True
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 (already warned about this writer)
                pass


def _wait_for_a_later_file_name(log_dir: Path) -> None:
    """Wait, at most a second, until a new event file's name sorts after every one in ``log_dir``.

    TensorBoard reads a folder's event files in name order, and applies each file's purge to the files read
    before it; names start with the creation second, but within one second they order by host, process id and
    a counter, not by creation. A stage restarted within a second of its last start waits for the next second.
    """
    stamps = [int(stamp) for path in log_dir.glob(EVENT_FILE_PREFIX + "*")
              if (stamp := path.name[len(EVENT_FILE_PREFIX):].split(".")[0]).isdigit()]
    if stamps:
        time.sleep(min(1.0, max(0.0, max(stamps) + 1 - time.time())))
