"""The verification rule: an exported model's error against float64 PyTorch must look like fp32 noise.

Errors are measured per column group of the decoded output [B, N, 5+nc]:
- boxes relative to their size: x and w errors over max(w, 1 px), y and h errors over max(h, 1 px)
  (w, h of the float64 box), so a 0.1 px wobble on a 300 px box weighs what 1e-3 px does on a 3 px one;
- objectness and class probabilities as absolute errors.

Each group is summarised by three statistics of the per-element error: the median (a bug moves nearly
every row; noise moves few), the 99th percentile and the maximum (a bug that hits some rows). The
tolerance of each statistic is FACTOR (2 x FACTOR for the maximum) times the largest value of that
statistic among the model's own equivalent fp32 computations (`noise.VARIANTS`), plus a small floor.
The ratio err / tolerance is the margin: <= 1 passes. A correct export is one more sample of the same
noise; every export bug in the catalogue (tests/verify/test_verify_catalogue.py) lands far above 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUPS = {"xy": (0, 2), "wh": (2, 4), "obj": (4, 5), "cls": (5, None)}
STATS = {"p50": 50.0, "p99": 99.0, "max": 100.0}
FACTOR = 3.0
# The maximum of a chaotic model's error is a heavy-tailed extreme: the same fp32 sample on another CPU
# (AVX2 vs AVX-512) lands up to ~1.5x beyond the largest of the five variants measured here; the median
# and p99 are stable. Bugs in the catalogue move the median by >= 80x its tolerance.
STAT_FACTOR = {"p50": FACTOR, "p99": FACTOR, "max": 2 * FACTOR}
# Floors, in the units above (relative box error, absolute probability). They matter only where fp32 is
# nearly exact (saturated sigmoids: both sides 1.0): bugs in the catalogue are >= 1e-3 there.
FLOORS = {"xy": 2e-5, "wh": 2e-5, "obj": 2e-5, "cls": 2e-5}
MIN_BOX = 1.0  # px: boxes smaller than this are judged as if they were 1 px


@dataclass
class GroupCheck:
    group: str
    stat: str  # the statistic with the largest ratio ("p50", "p99" or "max")
    onnx_err: float  # that statistic of the exported model's error against float64
    torch_err: float  # the largest value of that statistic among the fp32 PyTorch variants
    tolerance: float  # STAT_FACTOR[stat] * torch_err + floor
    passed: bool

    @property
    def ratio(self) -> float:
        return self.onnx_err / self.tolerance if self.tolerance > 0 else float("inf")


def errors(y: np.ndarray, ref64: np.ndarray) -> dict[str, np.ndarray]:
    """Per-element errors of y ([B, N, 5+nc]) against ref64, one flat array per group (see module doc)."""
    d = np.abs(y.astype(np.float64) - ref64)
    d = np.where(np.isnan(d), np.inf, d)
    size = np.maximum(ref64[..., 2:4], MIN_BOX)
    return {"xy": (d[..., 0:2] / size).ravel(), "wh": (d[..., 2:4] / size).ravel(),
            "obj": d[..., 4:5].ravel(), "cls": d[..., 5:].ravel()}


def summarize(err: np.ndarray) -> dict[str, float]:
    if err.size == 0:
        return {s: 0.0 for s in STATS}
    if not np.isfinite(err).all():
        return {s: float(np.percentile(np.nan_to_num(err, posinf=np.inf), q)) for s, q in STATS.items()}
    return {s: float(v) for s, v in zip(STATS, np.percentile(err, list(STATS.values())))}


def noise_stats(ref64: np.ndarray, variants: list[np.ndarray]) -> dict[str, dict[str, float]]:
    """group -> stat -> the largest value among the fp32 variants."""
    per = [{g: summarize(e) for g, e in errors(v, ref64).items()} for v in variants]
    return {g: {s: max(p[g][s] for p in per) for s in STATS} for g in GROUPS}


def check_groups(y: np.ndarray, ref64: np.ndarray, noise: dict[str, dict[str, float]],
                 factor: float = 1.0) -> list[GroupCheck]:
    """One GroupCheck per column group, reporting the statistic with the worst ratio. `factor` scales
    STAT_FACTOR (leave-one-out studies use it)."""
    out = []
    for g, e in errors(y, ref64).items():
        got = summarize(e)
        rows = []
        for s in STATS:
            tol = factor * STAT_FACTOR[s] * noise[g][s] + FLOORS[g]
            ratio = got[s] / tol if np.isfinite(got[s]) else float("inf")
            rows.append((ratio, s, got[s], noise[g][s], tol))
        ratio, s, err, torch_err, tol = max(rows, key=lambda r: r[0])
        out.append(GroupCheck(g, s, err, torch_err, tol, bool(ratio <= 1.0)))
    return out


def max_diffs(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max abs diff, max rel diff) of a against reference b; rel uses max(|b|, 1e-3) as denominator."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    rel = d / np.maximum(np.abs(b.astype(np.float64)), 1e-3)
    return (float(d.max()), float(rel.max())) if d.size else (0.0, 0.0)
