"""images/s of each candidate in both run modes (`optimize --throughput`), interleaved over the candidates.

Latency mode: the candidate's timing backend called back to back, one image at a time on every thread.
Throughput mode: a second backend of the same file opened as `Detector(mode="throughput")` opens it (ONNX
Runtime: threads // streams intra-op threads per call; OpenVINO: its THROUGHPUT hint with `streams` streams),
with `streams` calls in flight. Both run `images` calls per round on the same input, candidates round-robin so
machine load hits them alike; the best round of each is kept (the least disturbed by other processes).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..runtime.backends.throughput import ordered_map

Progress = Callable[[str, int, int], None]


def images_per_second(run: Callable[[np.ndarray], Any], x: np.ndarray, images: int, streams: int) -> float:
    """`images` calls of `run(x)`, `streams` at once (1: back to back): images/s."""
    t0 = time.perf_counter()
    if streams <= 1:
        for _ in range(images):
            run(x)
    else:
        for _ in ordered_map(lambda _i: run(x), range(images), streams):
            pass
    return images / (time.perf_counter() - t0)


def measure_modes(runners: Mapping[str, Any], streamed: Mapping[str, Any], x: np.ndarray, images: int,
                  rounds: int, streams: int, progress: Progress | None = None) -> dict[str, dict[str, Any]]:
    """{name: {"latency_ips", "throughput_ips"}} (best round of each) for every name in both mappings; a runner that
    raises is left out with {"error": message}."""
    from ..errors import first_line

    best: dict[str, dict[str, float]] = {k: {"latency_ips": 0.0, "throughput_ips": 0.0} for k in streamed}
    errors: dict[str, str] = {}
    total, done = rounds * len(streamed), 0
    for _ in range(rounds):
        for name in streamed:
            if name in errors:
                continue
            try:
                lat = images_per_second(runners[name], x, images, 1)
                thr = images_per_second(streamed[name], x, images, streams)
            except Exception as e:  # noqa: BLE001 - one failing candidate must not stop the others
                errors[name] = first_line(e)
                continue
            b = best[name]
            b["latency_ips"], b["throughput_ips"] = max(b["latency_ips"], lat), max(b["throughput_ips"], thr)
            done += 1
            if progress:
                progress("modes", done, total)
    return {k: ({"error": errors[k]} if k in errors else v) for k, v in best.items()}
