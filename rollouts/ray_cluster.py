"""Start or join the Ray cluster the workers run on."""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``); otherwise start a local Ray.

    A local Ray gets ``num_cpus`` CPUs (all cores when None) and no dashboard. Joining a cluster
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
    ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=True, logging_level=logging.WARNING)
