"""Start or join the Ray cluster the workers run on."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import ray
import ray._private.ray_constants

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
"""The only address a local Ray listens on."""


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``); otherwise start a local Ray.

    A local Ray gets ``num_cpus`` CPUs (all cores when None) and no dashboard, and every one of its servers
    (GCS, raylet, agents, this driver, every actor) listens on 127.0.0.1 only: nothing on the network can
    reach it, and no other machine can join it. It stops with this process: on a normal exit, an exception,
    Ctrl-C or SIGTERM (Ray's own exit hook and SIGTERM handler), and on SIGHUP, which is made to exit the same
    way. After a SIGKILL, Ray's kernel fate-sharing kills the GCS and raylet at once; their actors follow
    within seconds, but Ray's dashboard and runtime-env agents live on about 60 s more. Joining a cluster
    needs this package installed on every node. Does nothing if Ray is already initialised.
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        if num_cpus is not None:
            log.warning("ray.num_cpus=%s is ignored when joining the cluster at %s", num_cpus, address)
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as err:
            raise ConnectionError(f"could not join the Ray cluster at {address!r}: {err}. Check the address, "
                                  "or leave --ray-address/RAY_ADDRESS unset to start a local Ray") from None
        return
    _start_loopback_ray(num_cpus)
    _exit_on_hangup()


def _start_loopback_ray(num_cpus: int | None) -> None:
    """Start a local Ray whose node IP, and so every server's listening address, is 127.0.0.1."""
    # On Linux Ray swaps a node IP of 127.0.0.1 for the machine's external one (so that other machines can
    # join) unless multi-machine clusters are off: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which Ray reads into
    # ENABLE_RAY_CLUSTER when it is imported (before this runs), so the flag is set here, for this start only.
    # A Ray without that flag gets the loopback address alone, and the check below says if it did not take.
    constants = ray._private.ray_constants
    clusters_enabled = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if clusters_enabled is not None:
        constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=True, logging_level=logging.WARNING,
                 _node_ip_address=LOOPBACK)
    finally:
        if clusters_enabled is not None:
            constants.ENABLE_RAY_CLUSTER = clusters_enabled
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        log.warning("the local Ray runs on %s, not %s: its servers may be reachable from the network (this Ray "
                    "version ignored the loopback setting)", node_ip, LOOPBACK)


def _exit_on_hangup() -> None:
    """Make SIGHUP (the terminal closed) raise SystemExit, as Ray makes SIGTERM, so that ``finally`` blocks and
    Ray's exit hook run and stop the local Ray; by default SIGHUP ends the process as abruptly as SIGKILL."""
    if not hasattr(signal, "SIGHUP") or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        signal.signal(signal.SIGHUP, lambda signum, frame: sys.exit(128 + signum))
