"""Connect to a Ray cluster (or start a local one sized to this machine) and size the worker pool to it."""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError, first_line


def import_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--engine ray needs Ray: pip install 'yolor-deploy[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Inside: Ray is initialised. Reuses a session this process already has (left running); else connects to
    `address` (or $RAY_ADDRESS) and disconnects at the end, or starts a local instance with this machine's CPUs
    (no dashboard) and stops it at the end."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"address": address} if address else {"num_cpus": os.cpu_count() or 1, "include_dashboard": False}
    try:
        ray.init(**kwargs, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, ... : one line for the user
        where = f"Ray cluster at {address}" if address else "a local Ray instance"
        raise InputError(f"cannot start or reach {where} ({first_line(e)})") from None
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class PoolSize:
    workers: int
    cpus_per_worker: float  # the Ray CPU resource each actor reserves (fractional when workers > CPUs)
    threads: int  # intra-op threads per actor's model


def size_pool(num_workers: int | None, threads: int | None) -> PoolSize:
    """Default: one worker per alive node with CPUs (a head started with `--num-cpus 0` runs none). Each
    reserves CPUs / workers of the cluster, capped at the largest node's CPUs (an actor lives on one node: asking
    for more would never be scheduled), and runs its model on that many threads, at least 1 (unless `threads` is
    given): the pool fills the cluster without oversubscribing it."""
    ray = import_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    node_cpus = [float(n.get("Resources", {}).get("CPU", 0.0)) for n in nodes]
    total, largest = sum(node_cpus), max(node_cpus, default=0.0)
    if largest <= 0:
        raise InputError("the Ray cluster has no CPUs to run workers on")
    workers = num_workers if num_workers is not None else max(1, sum(c > 0 for c in node_cpus))
    per_worker = min(total / workers, largest)
    return PoolSize(workers, per_worker, threads or max(1, int(per_worker)))
