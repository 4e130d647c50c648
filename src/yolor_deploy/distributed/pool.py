"""Run shards on a pool of `ShardWorker` actors: each actor loads the model once and keeps two shards in flight.

Why plain actors, not Ray Data `map_batches`: the outputs are files, and "every image exactly once" must hold
through a killed worker and a rerun. Here a shard is the unit of retry and of completion: an actor killed
mid-shard is restarted by Ray (`max_restarts`) and the shard's call is retried on it (`max_task_retries`); the
retry rewrites the same files atomically and the record (the completion marker) is written last, so a shard
is either complete once or not at all, and the merge reads each shard once in source order. Ray Data gives
task retries too, but not an order or exactly-once side effects we could state; and resuming, skipping the
complete shards, is a filter on a list here.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .cluster import PoolSize, import_ray
from .shards import Shard

MAX_RESTARTS = 4  # per actor: a worker killed (OOM, preemption, a node lost) comes back this many times
MAX_TASK_RETRIES = 3  # per shard call interrupted by its actor's death
IN_FLIGHT_PER_WORKER = 2  # the next shard is queued while one runs


@dataclass
class PoolOutcome:
    done: list[dict[str, Any]] = field(default_factory=list)  # the workers' shard summaries, in completion order
    failed: list[tuple[Shard, str]] = field(default_factory=list)  # shards that failed after the retries


def run_shards(config: dict[str, Any], shards: list[Shard], size: PoolSize,
               on_done: Callable[[dict[str, Any]], None] | None = None) -> PoolOutcome:
    """Run `shards` on `size.workers` actors built from `config` (see ShardWorker); `on_done(summary)` after
    each completed shard, in the driver."""
    ray = import_ray()
    from ray.exceptions import RayActorError

    from ..errors import first_line
    from .worker import ShardWorker

    actor_cls = ray.remote(ShardWorker).options(num_cpus=size.cpus_per_worker, max_restarts=MAX_RESTARTS,
                                                max_task_retries=MAX_TASK_RETRIES)
    actors = [actor_cls.remote(config) for _ in range(min(size.workers, len(shards)))]
    pending, in_flight, dead = deque(shards), {}, set()
    out = PoolOutcome()

    def submit(k: int) -> None:
        if pending and k not in dead:
            shard = pending.popleft()
            in_flight[actors[k].run_shard.remote(shard.to_dict())] = (shard, k)

    for _ in range(IN_FLIGHT_PER_WORKER):
        for k in range(len(actors)):
            submit(k)
    try:
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            shard, k = in_flight.pop(ref)
            try:
                summary = ray.get(ref)
            except RayActorError as e:  # the actor is gone for good (restarts spent, or its model failed to load)
                dead.add(k)
                out.failed.append((shard, f"worker died: {first_line(e)}"))
                if len(dead) == len(actors):
                    out.failed += [(s, "no worker left") for s in pending]
                    pending.clear()
                continue
            except Exception as e:  # noqa: BLE001 - an error raised inside the shard (disk full, ...)
                out.failed.append((shard, f"{type(e).__name__}: {first_line(e)}"))
            else:
                out.done.append(summary)
                submit(k)
                if on_done is not None:
                    on_done(summary)
                continue
            submit(k)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
    return out
