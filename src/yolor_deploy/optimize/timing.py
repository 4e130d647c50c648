"""Latency of several candidates, interleaved: the same input, round-robin over the candidates, so machine
load and clock drift hit them alike (this project's machines are shared and noisy)."""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

Runner = Callable[[np.ndarray], object]
Progress = Callable[[str, int, int], None]


def time_interleaved(runners: Mapping[str, Runner], x: np.ndarray, runs: int, warmup: int = 1,
                     progress: Progress | None = None) -> dict[str, dict[str, float]]:
    """{name: {"p50", "p90", "mean", "runs"}} in ms for each runner called on `x`; a runner that raises is
    dropped from later rounds and reported as {"error": message}."""
    samples: dict[str, list[float]] = {k: [] for k in runners}
    errors: dict[str, str] = {}
    total = (warmup + runs) * len(runners)
    done = 0
    for r in range(warmup + runs):
        for name, run in runners.items():
            if name in errors:
                continue
            t0 = time.perf_counter()
            try:
                run(x)
            except Exception as e:  # noqa: BLE001 - one failing candidate must not stop the others
                from ..errors import first_line

                errors[name] = first_line(e)
                continue
            if r >= warmup:
                samples[name].append(time.perf_counter() - t0)
            done += 1
            if progress:
                progress("timing", done, total)
    out: dict[str, dict] = {}
    for name, v in samples.items():
        if name in errors:
            out[name] = {"error": errors[name]}
            continue
        a = np.asarray(v) * 1000
        out[name] = {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
                     "mean": float(a.mean()), "runs": len(a)}
    return out
