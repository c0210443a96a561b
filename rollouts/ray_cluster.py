"""Start or join the Ray cluster the workers run on; joining one ships this project's code to its nodes. Tests and
benchmarks simulate a multi-node cluster on this machine (:func:`simulated_cluster`)."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
import ray._private.ray_constants
from packaging.requirements import Requirement

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
"""The only address a local Ray listens on."""

DISTRIBUTION = "worldmodels"
"""This project's installed distribution, whose metadata names its pip dependencies."""
PACKAGES = ("envs", "rollouts", "worldmodels", "agents")
"""This project's top-level packages (folders beside ``rollouts/``), sent to a cluster's nodes."""
SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""The folder holding :data:`PACKAGES`."""


def project_runtime_env() -> dict[str, Any]:
    """Ray's ``runtime_env`` that ships this project to the nodes of a cluster: :data:`PACKAGES` as ``py_modules``
    (uploaded from this machine, caches left out) and the distribution's pip dependencies, which each node
    installs once on top of its own environment (what it already has is kept). Ray itself is left out: a node
    runs the cluster's Ray.

    :raises RuntimeError: this project is not installed here (its dependencies are unknown).
    """
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"the {DISTRIBUTION!r} package is not installed on this machine, so the dependencies to "
                           "ship to the Ray cluster are unknown: install it (pip install -e .), or set "
                           "ray.ship_code=false if every node already has it") from None
    pip = [text for text in requirements
           if (requirement := Requirement(text)).name.lower() != "ray"
           and (requirement.marker is None or requirement.marker.evaluate({"extra": ""}))]
    return {"py_modules": [str(SOURCE_ROOT / name) for name in PACKAGES], "pip": pip,
            "excludes": ["__pycache__/", "*.pyc"]}


def init_ray(address: str | None = None, num_cpus: int | None = None, ship_code: bool = True) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``); otherwise start a new local Ray (even where a cluster
    started by ``ray start`` or :func:`simulated_cluster` runs on this machine, which Ray's own default would join).

    A local Ray gets ``num_cpus`` CPUs (all cores when None) and no dashboard, and every one of its servers
    (GCS, raylet, agents, this driver, every actor) listens on 127.0.0.1 only: nothing on the network can
    reach it, and no other machine can join it. It stops with this process: on a normal exit, an exception,
    Ctrl-C or SIGTERM (Ray's own exit hook and SIGTERM handler), and on SIGHUP, which is made to exit the same
    way. After a SIGKILL, Ray's kernel fate-sharing kills the GCS and raylet at once; their actors follow
    within seconds, but Ray's dashboard and runtime-env agents live on about 60 s more.

    Joining a cluster ships this project to its nodes (:func:`project_runtime_env`), so a node needs Ray and
    Python only; ``ship_code=False`` (``ray.ship_code``) skips that, for clusters whose image has this package
    installed at the driver's version. Does nothing if Ray is already initialised.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        if num_cpus is not None:
            log.warning("ray.num_cpus=%s is ignored when joining the cluster at %s", num_cpus, address)
        runtime_env = project_runtime_env() if ship_code else None
        try:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        except ConnectionError as err:
            raise ConnectionError(f"could not join the Ray cluster at {address!r}: {err}. Check the address, "
                                  "or leave --ray-address/RAY_ADDRESS unset to start a local Ray") from None
        return
    _start_loopback_ray(num_cpus)
    _exit_on_hangup()


def _start_loopback_ray(num_cpus: int | None) -> None:
    """Start a local Ray whose node IP, and so every server's listening address, is 127.0.0.1."""
    with _multi_machine_clusters_off():  # "local": a new Ray, even while a cluster started on this machine runs
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, configure_logging=True,
                 logging_level=logging.WARNING, _node_ip_address=LOOPBACK)
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        log.warning("the local Ray runs on %s, not %s: its servers may be reachable from the network (this Ray "
                    "version ignored the loopback setting)", node_ip, LOOPBACK)


@contextmanager
def _multi_machine_clusters_off(child_processes: bool = False) -> Iterator[None]:
    """Turn Ray's multi-machine clusters off while the block runs, so that Ray keeps a node IP of 127.0.0.1.

    On Linux Ray swaps a node IP of 127.0.0.1 for the machine's external one (so that other machines can join)
    unless multi-machine clusters are off: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which Ray reads into
    ENABLE_RAY_CLUSTER when it is imported (before this runs), so this process gets the constant; with
    ``child_processes`` the Ray servers the block starts (other processes) get the environment variable too. Both
    are restored afterwards. A Ray without the flag gets the loopback address alone.
    """
    constants = ray._private.ray_constants
    clusters_enabled = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    variable = getattr(constants, "ENABLE_RAY_CLUSTERS_ENV_VAR", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    environment = os.environ.get(variable)
    if clusters_enabled is not None:
        constants.ENABLE_RAY_CLUSTER = False
    if child_processes:
        os.environ[variable] = "0"
    try:
        yield
    finally:
        if clusters_enabled is not None:
            constants.ENABLE_RAY_CLUSTER = clusters_enabled
        if child_processes:
            if environment is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = environment


@contextmanager
def simulated_cluster(nodes: int, cpus_per_node: int = 1) -> Iterator[Cluster]:
    """A Ray cluster on this machine (``ray.cluster_utils.Cluster``): a head with no CPUs, so that it runs no
    actors, and ``nodes`` worker nodes of ``cpus_per_node`` CPUs each, with this process joined as its driver and
    :data:`PACKAGES` shipped to the nodes as on a real cluster (their pip dependencies left out: this machine has
    them, and installing them would need the network). Every node and the driver use 127.0.0.1, as a local Ray
    does. The nodes share this machine's cores, whatever CPUs they declare. On exit the driver leaves and the
    cluster stops. Tests remove nodes from the yielded cluster (``cluster.remove_node``) to lose one mid-run.

    :raises RuntimeError: Ray is already initialised in this process.
    """
    from ray.cluster_utils import Cluster  # only tests and benchmarks simulate a cluster

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process: call ray.shutdown() before starting a "
                           "simulated cluster")
    with _multi_machine_clusters_off(child_processes=True):
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        try:
            for _ in range(nodes):
                cluster.add_node(num_cpus=cpus_per_node)
            cluster.wait_for_nodes()
            shipped = {key: value for key, value in project_runtime_env().items() if key != "pip"}
            ray.init(address=cluster.address, runtime_env=shipped)
            yield cluster
        finally:
            ray.shutdown()
            cluster.shutdown()


def _exit_on_hangup() -> None:
    """Make SIGHUP (the terminal closed) raise SystemExit, as Ray makes SIGTERM, so that ``finally`` blocks and
    Ray's exit hook run and stop the local Ray; by default SIGHUP ends the process as abruptly as SIGKILL."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        signal.signal(signal.SIGHUP, lambda signum, frame: sys.exit(128 + signum))
