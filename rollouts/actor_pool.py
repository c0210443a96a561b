"""A fixed set of Ray actors that run a list of tasks, replacing an actor that dies and retrying its task.

Unlike ``ray.util.ActorPool`` the actors survive across calls to :meth:`ReplacingActorPool.map` (they
hold loaded models), and a task whose actor died or raised is retried, up to ``max_retries`` times, so one
lost worker (or a whole lost node) does not lose the batch of work. An actor gets tasks only once it has
started, so a retried task goes to whichever actor is free: when a node leaves the cluster, its actors'
replacements wait for CPUs that may never come back while the actors left do the work. A pool that asks
for more CPUs than the cluster has fails at once (:class:`ClusterTooSmallError`), and waiting for results
is bounded (:func:`wait_for_first`): a pool whose actors can never run, or whose Ray node died, raises
:class:`PoolStalledError` instead of waiting forever.

Ray's own actor fault tolerance (``max_restarts``, ``max_task_retries``, ``retry_exceptions``) is not used:
it would retry a task that raised on the same actor, whose environments may be left broken; it pins a
retried task to the restarted actor, which on a shrunken cluster waits for a node that is gone; and it does
not say how many tasks it retried, which the logs report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import ray

log = logging.getLogger(__name__)

Task = TypeVar("Task")

ACTOR_CPUS = 1
"""CPUs each rollout actor reserves (``ray.remote(num_cpus=ACTOR_CPUS)``): one actor per core."""

DEFAULT_MAX_STALL_S = 1800.0
"""Seconds without any result after which a pool gives up by default (worldmodels' ``ray.max_stall_s``)."""

NODE_CHECK_S = 10.0
"""Seconds between checks, while no result comes, that a live Ray node is left to run the actors."""

_CPU_HINT = ("If the actors ask for more CPUs than the cluster has free they never start: lower num_workers, or stop "
             "what holds the CPUs")


class TaskFailedError(RuntimeError):
    """The pool could not finish a task: it kept failing after every retry (the message carries the last
    error), or, as :class:`PoolStalledError`, no result came at all."""


class PoolStalledError(TaskFailedError):
    """No result came from the actors for ``max_stall_s`` seconds, or no live Ray node is left to run them."""


class ClusterTooSmallError(ValueError):
    """The actors ask for more CPUs than the whole Ray cluster has, so some could never start."""


def check_cluster_fits(actors: int, cpus_per_actor: float) -> None:
    """Refuse ``actors`` actors of ``cpus_per_actor`` CPUs each when the Ray cluster's live nodes have fewer CPUs in
    all (Ray would otherwise leave the extra actors pending, and their tasks waiting, forever).

    On an autoscaling cluster only the nodes up now count: start it with enough worker nodes (``min_workers``).

    :raises ClusterTooSmallError: naming the CPUs asked for, the cluster's and how many actors fit.
    """
    total = float(ray.cluster_resources().get("CPU", 0.0))
    needed = actors * cpus_per_actor
    if needed <= total:
        return
    fit = int(total // cpus_per_actor) if cpus_per_actor > 0 else actors
    advice = (f"lower num_workers (collect.num_workers / cmaes.num_workers) to {fit} or fewer, or add nodes"
              if fit else "add worker nodes with CPUs (a head started with --num-cpus=0 runs no actors)")
    raise ClusterTooSmallError(f"{actors} Ray actors of {cpus_per_actor:g} CPU each need {needed:g} CPUs, but the "
                               f"Ray cluster has {total:g} CPUs on {live_node_count()} live nodes: {advice}")


def pool_size(num_workers: int | None, tasks: int | None = None) -> int:
    """Actors for a pool: ``num_workers``, or with None one per CPU of the Ray cluster (all of them, not what is free
    right now); no more than ``tasks`` when given, and at least one."""
    workers = num_workers or int(ray.cluster_resources().get("CPU", 1))
    return max(min(workers, tasks) if tasks is not None else workers, 1)


def live_node_count() -> int:
    """How many nodes of the Ray cluster the GCS reports alive.

    :raises PoolStalledError: the GCS could not be asked (the local Ray is gone).
    """
    try:
        nodes = ray.nodes()
    except Exception as err:  # a GCS that is gone fails in many ways (RpcError, RaySystemError, ...)
        raise PoolStalledError(f"could not ask Ray which nodes are alive ({type(err).__name__}: {err}): the local "
                               "Ray is gone. Run the command again (it starts a fresh Ray)") from err
    return sum(bool(node.get("Alive")) for node in nodes)


def wait_for_first(refs: list[ray.ObjectRef], actors: int, stall_warning_s: float = 300.0,
                   max_stall_s: float = DEFAULT_MAX_STALL_S, starting: int | None = None) -> ray.ObjectRef:
    """The first of ``refs`` (results owed by ``actors`` Ray actors, ``starting`` of which have not started yet:
    None for unknown) to finish, waiting a bounded time.

    While nothing finishes it checks every :data:`NODE_CHECK_S` seconds that a Ray node is still alive, and every
    ``stall_warning_s`` seconds says why it may be waiting: a warning naming the likely cause (actors that cannot get
    CPUs) while some actors have not started; with every actor started and busy, only a progress line (long tasks).

    :raises PoolStalledError: no Ray node is alive (the local raylet died), the GCS cannot be reached, or
        nothing finished within ``max_stall_s`` seconds.
    """
    start = time.monotonic()
    notices = 0
    while True:
        now = time.monotonic()
        until = min(start + (notices + 1) * stall_warning_s, start + max_stall_s, now + NODE_CHECK_S)
        ready, _ = ray.wait(refs, num_returns=1, timeout=max(until - now, 0.0))
        if ready:
            return ready[0]
        waited = time.monotonic() - start
        if live_node_count() == 0:
            raise PoolStalledError(
                f"no result from {actors} Ray actors in {waited:.0f} s, and no Ray node is alive to run them (the "
                "local raylet died, or every node left the cluster). See raylet.out in the Ray session's logs "
                "(/tmp/ray/session_latest/logs by default) for why, then run the command again")
        if waited >= max_stall_s:
            cause = (f"though all of them started: a task runs longer than {max_stall_s:.0f} s, or an actor hangs"
                     if starting == 0 else f"({_free_cpus()} CPUs free in the cluster). {_CPU_HINT}")
            raise PoolStalledError(f"no result from {actors} Ray actors in {waited:.0f} s {cause}. If one task really "
                                   "takes this long, give the pool a larger max_stall_s (worldmodels: --set "
                                   "ray.max_stall_s=SECONDS)")
        if waited >= (notices + 1) * stall_warning_s:
            notices = int(waited // stall_warning_s)  # one line, however many periods a pause (SIGSTOP) spanned
            if starting == 0:
                log.info("%d Ray actors, all started, have run their tasks for %.0f s with no result yet (the pool "
                         "gives up after %.0f s)", actors, waited, max_stall_s)
            else:
                log.warning("no result from %d Ray actors in %.0f s (%s CPUs free in the cluster). %s (the pool "
                            "gives up after %.0f s)", actors, waited, _free_cpus(), _CPU_HINT, max_stall_s)


def _free_cpus() -> str:
    """The cluster's free CPUs, as text ("unknown" when Ray does not say)."""
    free = ray.available_resources().get("CPU")
    return "unknown" if free is None else f"{free:.0f}"


class ReplacingActorPool(Generic[Task]):
    """``size`` actors made by ``make_actor()``; :meth:`map` runs tasks on them as they start and free up."""

    def __init__(self, make_actor: Callable[[], Any], size: int, stall_warning_s: float = 300.0,
                 max_stall_s: float = DEFAULT_MAX_STALL_S, cpus_per_actor: float = ACTOR_CPUS) -> None:
        """:param cpus_per_actor: the CPUs each actor asks Ray for, checked against the cluster's
            (:func:`check_cluster_fits`).
        :param stall_warning_s: seconds without any result after which :meth:`map` logs a warning naming
            the likely cause (actors waiting for CPUs the cluster does not have free), and again each time
            as long again passes.
        :param max_stall_s: seconds without any result after which :meth:`map` gives up with
            :class:`PoolStalledError` (default 30 min, six ``stall_warning_s`` periods). It gives up sooner, within
            :data:`NODE_CHECK_S` seconds, when no Ray node is left alive.
        """
        if size < 1:
            raise ValueError(f"an actor pool needs at least one actor, got {size}")
        if stall_warning_s <= 0 or max_stall_s <= 0:
            raise ValueError(f"stall_warning_s and max_stall_s must be > 0 seconds, got {stall_warning_s} and "
                             f"{max_stall_s}")
        check_cluster_fits(size, cpus_per_actor)
        self.make_actor = make_actor
        self.stall_warning_s = stall_warning_s
        self.max_stall_s = max_stall_s
        self.actors: list[Any] = []
        self.starting: dict[ray.ObjectRef, int] = {}
        """The actors not known to have started: readiness ref -> slot. They get no task until it resolves."""
        self.failed_starts = [0] * size
        """Per slot, how many actors in a row died before they started."""
        for slot in range(size):
            self.actors.append(make_actor())
            self._watch_start(slot)
        self.retried = 0
        """Task attempts that failed (their actor died, or the task raised) and were retried, over every call to
        :meth:`map`."""

    def _watch_start(self, slot: int) -> None:
        """Give the actor in ``slot`` no task until Ray says it has started (its constructor ran)."""
        self.starting[self.actors[slot].__ray_ready__.remote()] = slot

    def map(
        self,
        tasks: list[Task],
        call: Callable[[Any, Task], ray.ObjectRef],
        on_result: Callable[[Task, Any], None],
        max_retries: int = 3,
        describe: Callable[[Task], str] = str,
    ) -> int:
        """Run every task: ``call(actor, task)`` submits it, ``on_result(task, value)`` receives its result.

        :returns: how many task attempts failed and were retried (each failed actor is replaced).
        :raises TaskFailedError: a task failed ``max_retries + 1`` times, or ``max_retries + 1`` actors in a row
            died in one slot before they started (their constructor raised).
        :raises PoolStalledError: no result came for ``max_stall_s`` seconds, or no Ray node is left alive.
        """
        queue = list(reversed(range(len(tasks))))  # positions in ``tasks``, next at the end
        attempts = [0] * len(tasks)
        in_flight: dict[ray.ObjectRef, tuple[int, int]] = {}  # ref -> (actor slot, task position)
        idle = sorted(set(range(len(self.actors))) - set(self.starting.values()))  # started actors without a task
        retried = 0

        def dispatch() -> None:
            while queue and idle:
                slot, position = idle.pop(0), queue.pop()
                in_flight[call(self.actors[slot], tasks[position])] = (slot, position)

        dispatch()
        while in_flight or queue:  # with tasks queued, no actor is idle: each is busy or starting
            ref = wait_for_first([*in_flight, *self.starting], len(self.actors), self.stall_warning_s,
                                 self.max_stall_s, starting=len(self.starting))
            if ref in self.starting:
                slot = self.starting.pop(ref)
                if self._started(ref, slot, max_retries):
                    idle.append(slot)
                    dispatch()
                continue
            slot, position = in_flight.pop(ref)
            task = tasks[position]
            try:
                value = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError, ray.exceptions.ObjectLostError) as err:
                attempts[position] += 1
                if attempts[position] > max_retries:
                    raise TaskFailedError(f"{describe(task)} failed on all {attempts[position]} attempts; "
                                          f"last error: {err}") from err
                retried += 1
                self.retried += 1
                log.warning("%s failed (%s); replacing the worker and retrying", describe(task), type(err).__name__)
                self.replace(slot)
                queue.append(position)
                dispatch()  # on an idle started actor, if there is one; else the first to free up or start
                continue
            on_result(task, value)
            idle.append(slot)
            dispatch()
        return retried

    def _started(self, ref: ray.ObjectRef, slot: int, max_retries: int) -> bool:
        """Whether the actor in ``slot``, whose readiness ``ref`` resolved, started; one that died first is replaced.

        :raises TaskFailedError: ``max_retries + 1`` actors in a row died in this slot before they started.
        """
        try:
            ray.get(ref)
        except ray.exceptions.RayActorError as err:
            self.failed_starts[slot] += 1
            if self.failed_starts[slot] > max_retries:
                raise TaskFailedError(f"{self.failed_starts[slot]} Ray actors in a row died before they started; "
                                      f"last error: {err}") from err
            log.warning("a Ray worker died before it started (%s); replacing it", type(err).__name__)
            self.replace(slot)
            return False
        self.failed_starts[slot] = 0
        return True

    def replace(self, slot: int) -> None:
        """Kill the actor in ``slot`` (if still alive) and put a fresh one there, which gets tasks once started."""
        ray.kill(self.actors[slot], no_restart=True)
        self.starting = {ref: other for ref, other in self.starting.items() if other != slot}
        self.actors[slot] = self.make_actor()
        self._watch_start(slot)

    def shutdown(self) -> None:
        """Kill every actor."""
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.starting.clear()
