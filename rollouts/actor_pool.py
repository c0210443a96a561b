"""A fixed set of Ray actors that run a list of tasks, replacing an actor that dies and retrying its task.

Unlike ``ray.util.ActorPool`` the actors survive across calls to :meth:`ReplacingActorPool.map` (they
hold loaded models), and a task whose actor died or raised is retried on a fresh actor, up to
``max_retries`` times, so one lost worker does not lose the batch of work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import ray

log = logging.getLogger(__name__)

Task = TypeVar("Task")


class TaskFailedError(RuntimeError):
    """A task kept failing after every retry; the message carries the last error."""


class ReplacingActorPool(Generic[Task]):
    """``size`` actors made by ``make_actor()``; :meth:`map` runs tasks on them as they free up."""

    def __init__(self, make_actor: Callable[[], Any], size: int, stall_warning_s: float = 300.0) -> None:
        """:param stall_warning_s: seconds without any result after which :meth:`map` logs a warning naming
        the likely cause (actors waiting for CPUs the cluster does not have free)."""
        if size < 1:
            raise ValueError(f"an actor pool needs at least one actor, got {size}")
        self.make_actor = make_actor
        self.stall_warning_s = stall_warning_s
        self.actors = [make_actor() for _ in range(size)]
        self.retried = 0
        """Task attempts retried on a replaced actor, over every call to :meth:`map`."""

    def map(
        self,
        tasks: list[Task],
        call: Callable[[Any, Task], ray.ObjectRef],
        on_result: Callable[[Task, Any], None],
        max_retries: int = 3,
        describe: Callable[[Task], str] = str,
    ) -> int:
        """Run every task: ``call(actor, task)`` submits it, ``on_result(task, value)`` receives its result.

        :returns: how many task attempts failed and were retried on a replaced actor.
        :raises TaskFailedError: a task failed ``max_retries + 1`` times.
        """
        queue = list(reversed(range(len(tasks))))  # positions in ``tasks``, next at the end
        attempts = [0] * len(tasks)
        in_flight: dict[ray.ObjectRef, tuple[int, int]] = {}  # ref -> (actor slot, task position)
        retried = 0

        def submit(slot: int) -> None:
            if queue:
                position = queue.pop()
                in_flight[call(self.actors[slot], tasks[position])] = (slot, position)

        for slot in range(len(self.actors)):
            submit(slot)
        while in_flight:
            ref = self._next_ready(list(in_flight))
            slot, position = in_flight.pop(ref)
            task = tasks[position]
            try:
                value = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as err:
                attempts[position] += 1
                if attempts[position] > max_retries:
                    raise TaskFailedError(f"{describe(task)} failed on all {attempts[position]} attempts; "
                                          f"last error: {err}") from err
                retried += 1
                self.retried += 1
                log.warning("%s failed (%s); replacing the worker and retrying", describe(task), type(err).__name__)
                self.replace(slot)
                queue.append(position)
                submit(slot)
                continue
            on_result(task, value)
            submit(slot)
        return retried

    def _next_ready(self, refs: list[ray.ObjectRef]) -> ray.ObjectRef:
        """The first of ``refs`` to finish; warns (once per wait) when none has after ``stall_warning_s``."""
        ready, _ = ray.wait(refs, num_returns=1, timeout=self.stall_warning_s)
        if not ready:
            free = ray.available_resources().get("CPU", 0.0)
            log.warning("no result from %d Ray actors in %.0f s (%.0f CPUs free in the cluster). If the actors ask "
                        "for more CPUs than the cluster has free they wait forever: lower num_workers, or stop "
                        "what holds the CPUs", len(self.actors), self.stall_warning_s, free)
            ready, _ = ray.wait(refs, num_returns=1)
        return ready[0]

    def replace(self, slot: int) -> None:
        """Kill the actor in ``slot`` (if still alive) and put a fresh one there."""
        ray.kill(self.actors[slot], no_restart=True)
        self.actors[slot] = self.make_actor()

    def shutdown(self) -> None:
        """Kill every actor."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
