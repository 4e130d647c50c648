"""Throughput run mode (how the backends are driven): several images in flight at once, results in input order.

Latency mode runs one image at a time with every core on it; throughput mode runs `streams` images
concurrently, each call with cores // streams intra-op threads (ONNX Runtime's `run()` is thread-safe on
one session, and releases the GIL while it computes), so pre/post-processing of one image overlaps the
inference of another.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

MODES = ("latency", "throughput")


def check_mode(mode: str) -> str:
    from ...errors import InputError

    if mode not in MODES:
        raise InputError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    return mode


def default_streams() -> int:
    """Images in flight in throughput mode: one per core, at least 2."""
    return max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 2)


def threads_per_stream(streams: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(streams, 1))


def ordered_map(fn, items: Iterable[Any], streams: int) -> Iterator[Any]:
    """`fn(item)` for every item with up to `streams` calls in flight; results yielded in input order."""
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="yolor-stream") as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * streams:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
