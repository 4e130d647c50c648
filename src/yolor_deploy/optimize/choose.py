"""Rows of the optimize table, the Pareto front (latency vs accuracy) and the choice: the fastest
candidate whose mAP@0.5:0.95 is at most `budget` points below the fp32 reference's."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .candidates import CandidateSpec


@dataclass
class Row:
    """One candidate. `status`: "ok", "failed" or "skipped" (with `reason`). Latency in ms (p50/p90 of
    the interleaved run), `speedup` = reference p50 / p50; `map50`/`map` in 0..1; `drop` in points
    (100 x (reference mAP@0.5:0.95 - this one's))."""

    name: str
    backend: str
    precision: str
    note: str = ""
    status: str = "ok"
    reason: str = ""
    file: str = ""
    size_mb: float | None = None
    build_s: float | None = None
    p50: float | None = None
    p90: float | None = None
    speedup: float | None = None
    map50: float | None = None
    map: float | None = None
    drop: float | None = None
    detections: int | None = None
    within_budget: bool = False
    pareto: bool = False
    chosen: bool = False
    runtime: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: CandidateSpec) -> Row:
        return cls(spec.name, spec.backend, spec.precision if spec.infer_precision == "f32" or
                   spec.precision != "int8" else f"int8+{spec.infer_precision}", spec.note)

    def fail(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mark_pareto(rows: list[Row]) -> None:
    """`pareto` = no other measured row is at least as fast and as accurate, and better in one."""
    done = [r for r in rows if r.ok and r.p50 is not None and r.map is not None]
    for r in done:
        r.pareto = not any(o is not r and o.p50 <= r.p50 and o.map >= r.map  # type: ignore[operator]
                           and (o.p50 < r.p50 or o.map > r.map) for o in done)  # type: ignore[operator]


def choose(rows: list[Row], reference: Row, budget: float) -> tuple[Row, str]:
    """Fill `speedup`, `drop`, `within_budget`, `pareto`; pick the fastest row within `budget` points
    (the reference always is; with budget 0 only fp32 rows are). Returns (chosen row, one-line reason)."""
    for r in rows:
        if r.ok and r.p50 and reference.p50:
            r.speedup = reference.p50 / r.p50
        if r.ok and r.map is not None and reference.map is not None:
            r.drop = round(100 * (reference.map - r.map), 4)
            # a zero budget means fp32-exact: a finite image set cannot prove a lossy candidate lossless
            r.within_budget = r.drop <= budget + 1e-9 and (budget > 0 or r.precision == "fp32")
    mark_pareto(rows)
    fits = [r for r in rows if r.ok and r.within_budget and r.p50 is not None]
    best = min(fits, key=lambda r: r.p50) if fits else reference  # type: ignore[arg-type, return-value]
    best.chosen = True
    faster = [r for r in rows if r.ok and r.p50 is not None and best.p50 is not None and r.p50 < best.p50]
    why = (f"{best.name}: the fastest within {budget:g} point(s) of mAP@0.5:0.95 "
           f"(drop {_points(best.drop)}, {best.speedup or 1:.2f}x the ORT fp32 speed)")
    if faster:
        why += "; faster but over budget: " + ", ".join(f"{r.name} (drop {_points(r.drop)})" for r in faster)
    skipped: dict[str, list[str]] = {}
    for r in rows:
        if r.status == "skipped":
            skipped.setdefault(r.reason, []).append(r.name)
    for reason, names in skipped.items():
        why += f"; not tried: {', '.join(names)} ({reason})"
    return best, why


def _points(drop: float | None) -> str:
    return "not measured" if drop is None else f"{drop:+.2f}"
