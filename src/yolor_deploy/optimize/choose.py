"""Rows of the optimize table, the Pareto front (latency vs accuracy) and the choice: the fastest
candidate whose accuracy drop (mAP@0.5:0.95 with labels, agreement AP@0.5 without) is within `budget`
points at the upper end of its bootstrap interval (`optimize.uncertainty`), not just on average."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .candidates import CandidateSpec


@dataclass
class Row:
    """One candidate. `status`: "ok", "failed" or "skipped" (with `reason`). Latency in ms (p50/p90 of
    the interleaved run), `speedup` = reference p50 / p50; `map50`/`map` in 0..1; `score`: the one the budget
    applies to; `drop` in points (100 x (reference score - this one's)) with its bootstrap interval
    [`drop_lo`, `drop_hi`]; `images_needed`: images for the interval to fit the budget at this drop (None:
    the drop itself is over it)."""

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
    score: float | None = None
    drop: float | None = None
    drop_lo: float | None = None
    drop_hi: float | None = None
    images_needed: int | None = None
    detections: int | None = None
    within_budget: bool = False
    pareto: bool = False
    chosen: bool = False
    runtime: dict[str, Any] = field(default_factory=dict)
    latency_ips: float | None = None  # images/s, one call at a time (`optimize --throughput`)
    throughput_ips: float | None = None  # images/s, `streams` calls in flight
    streams: int | None = None
    throughput_error: str = ""
    fake_quantize: int | None = None  # FakeQuantize ops of an NNCF int8 IR (the guarded one keeps fewer)

    @classmethod
    def from_spec(cls, spec: CandidateSpec) -> Row:
        return cls(spec.name, spec.backend, spec.precision if spec.infer_precision == "f32" or
                   spec.precision != "int8" else f"int8+{spec.infer_precision}", spec.note)

    def fail(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason

    @property
    def accuracy(self) -> float | None:
        """The score the budget applies to (mAP@0.5:0.95 when no other was set)."""
        return self.score if self.score is not None else self.map

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mark_pareto(rows: list[Row]) -> None:
    """`pareto` = no other measured row is at least as fast and as accurate, and better in one."""
    done = [r for r in rows if r.ok and r.p50 is not None and r.accuracy is not None]
    for r in done:
        r.pareto = not any(o is not r and o.p50 <= r.p50 and o.accuracy >= r.accuracy  # type: ignore[operator]
                           and (o.p50 < r.p50 or o.accuracy > r.accuracy) for o in done)  # type: ignore[operator]


def choose(rows: list[Row], reference: Row, budget: float) -> tuple[Row, str]:
    """Fill `speedup`, `drop` (and, where no interval was measured, `drop_lo`/`drop_hi` = `drop`),
    `within_budget`, `pareto`; pick the fastest row whose drop's upper end is within `budget` points
    (the reference always is; with budget 0 only fp32 rows with no drop are). Returns (chosen row, reason)."""
    for r in rows:
        if r.ok and r.p50 and reference.p50:
            r.speedup = reference.p50 / r.p50
        if r.ok and r.accuracy is not None and reference.accuracy is not None:
            if r.drop is None or r is reference:
                r.drop = round(100 * (reference.accuracy - r.accuracy), 4)
            if r.drop_hi is None or r is reference:
                r.drop_lo = r.drop_hi = r.drop
            # a zero budget means fp32-exact: a finite image set cannot prove a lossy candidate lossless
            r.within_budget = (r.drop_hi <= budget + 1e-9 if budget > 0
                               else r.precision == "fp32" and r.drop <= 1e-9)
    mark_pareto(rows)
    fits = [r for r in rows if r.ok and r.within_budget and r.p50 is not None]
    best = min(fits, key=lambda r: r.p50) if fits else reference  # type: ignore[arg-type, return-value]
    best.chosen = True
    faster = [r for r in rows if r.ok and r.p50 is not None and best.p50 is not None and r.p50 < best.p50]
    why = (f"{best.name}: the fastest within {budget:g} point(s) "
           f"(drop {_points(best)}, {best.speedup or 1:.2f}x the ORT fp32 speed)")
    if faster:
        why += "; faster but over budget: " + ", ".join(f"{r.name} (drop {_points(r)}{_needed(r, budget)})"
                                                       for r in faster)
    skipped: dict[str, list[str]] = {}
    for r in rows:
        if r.status == "skipped":
            skipped.setdefault(r.reason, []).append(r.name)
    for reason, names in skipped.items():
        why += f"; not tried: {', '.join(names)} ({reason})"
    return best, why


def _points(r: Row) -> str:
    if r.drop is None:
        return "not measured"
    if r.drop_lo is None or r.drop_hi is None or r.drop_lo == r.drop_hi:
        return f"{r.drop:+.2f}"
    return f"{r.drop:+.2f}, 95% interval {r.drop_lo:+.2f}..{r.drop_hi:+.2f}"


def _needed(r: Row, budget: float) -> str:
    if r.drop is None or r.drop_hi is None or budget <= 0 or r.drop_hi <= budget:
        return ""
    if r.images_needed is None:
        return ": over the budget itself"
    return f": ~{r.images_needed} images could decide"
