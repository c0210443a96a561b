"""The bytes a Ray driver hands to Ray, for the scaling benchmarks' "bytes moved" columns (``--nodes``).

:func:`counting_ray_traffic` counts, while it is open, each value as Ray's serializer writes it (``total_bytes``,
what Ray stores or sends for it): every ``ray.put`` payload; the arguments of every actor started and of every
actor method called (an ObjectRef passed as an argument counts as its 28-byte id: Ray passes the reference, and
the object behind it is pulled by each node's object store once, however many tasks name it); and every value
``ray.get`` returns. Not counted: Ray's own control messages, the code shipped to each node once (``runtime_env``),
and the copies of a put object that the nodes pull (one per node that uses it), which
:func:`object_store_bytes` shows instead: what all the nodes' object stores hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import ray
import ray.actor

KIB = 2**10
"""Bytes per KiB, a unit of the tables."""
MIB = 2**20
"""Bytes per MiB, a unit of the tables."""


@dataclass
class RayTraffic:
    """Bytes and counts handed to Ray (see the module docstring for what is counted)."""

    put_bytes: int = 0
    """Serialized size of every ``ray.put`` payload."""
    argument_bytes: int = 0
    """Serialized size of the arguments of actors started and of actor methods called (refs as ids)."""
    result_bytes: int = 0
    """Serialized size of every value ``ray.get`` returned."""
    tasks: int = 0
    """Actor method calls, Ray's own readiness probes (``__ray_ready__``) left out."""

    def __sub__(self, earlier: RayTraffic) -> RayTraffic:
        """What was counted since ``earlier`` (a copy of this counter taken before)."""
        return RayTraffic(*(now - then for now, then in zip(dataclasses.astuple(self), dataclasses.astuple(earlier))))

    def per(self, calls: int) -> RayTraffic:
        """This traffic spread over ``calls`` calls (bytes and tasks rounded down)."""
        return RayTraffic(*(value // calls for value in dataclasses.astuple(self)))


def serialized_size(value: Any) -> int:
    """Bytes Ray's serializer writes for ``value`` (an ObjectRef: its id; Ray passes the reference)."""
    if isinstance(value, ray.ObjectRef):
        return len(value.binary())
    context = ray._private.worker.global_worker.get_serialization_context()
    size = context.serialize(value).total_bytes
    context.get_and_clear_contained_object_refs()  # the refs it holds are left to Ray's own serialization
    return size


def _arguments_size(args: Any, kwargs: Any) -> int:
    return sum(map(serialized_size, args or ())) + sum(map(serialized_size, (kwargs or {}).values()))


@contextmanager
def counting_ray_traffic() -> Iterator[RayTraffic]:
    """Count what this process hands to Ray while the block runs, into the yielded :class:`RayTraffic`.

    Ray must be initialised before the block calls Ray. It wraps ``ray.put``, ``ray.get`` and the ``_remote`` of
    actor classes and actor methods, which is where ``.remote(...)`` lands; each call then runs as before.
    """
    traffic = RayTraffic()
    put, get = ray.put, ray.get
    start_actor, call_method = ray.actor.ActorClass._remote, ray.actor.ActorMethod._remote

    def counted_put(value: Any, **options: Any) -> ray.ObjectRef:
        traffic.put_bytes += serialized_size(value)
        return put(value, **options)

    def counted_get(refs: Any, **options: Any) -> Any:
        values = get(refs, **options)
        traffic.result_bytes += serialized_size(values)
        return values

    def counted_start(actor_class: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        traffic.argument_bytes += _arguments_size(args, kwargs)
        return start_actor(actor_class, args, kwargs, **options)

    def counted_call(method: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        traffic.argument_bytes += _arguments_size(args, kwargs)
        traffic.tasks += method._method_name != "__ray_ready__"
        return call_method(method, args, kwargs, **options)

    replacements: list[tuple[Any, str, Callable[..., Any]]] = [
        (ray, "put", counted_put), (ray, "get", counted_get),
        (ray.actor.ActorClass, "_remote", counted_start), (ray.actor.ActorMethod, "_remote", counted_call)]
    with ExitStack() as stack:
        for owner, name, replacement in replacements:
            stack.enter_context(mock.patch.object(owner, name, replacement))
        yield traffic


def object_store_bytes() -> int:
    """Bytes the object stores of all the cluster's nodes hold now (Ray's memory summary): an object pulled by
    three nodes besides the driver's counts four times."""
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    state = get_state_from_address(ray.get_runtime_context().gcs_address)
    return int(get_memory_info_reply(state).store_stats.object_store_bytes_used)
