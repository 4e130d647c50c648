"""The optimize report: the JSON document (`report.json`, read back only when named: `--hint`,
`runtime.backends.report_hint`) and the table printed on the console."""
from __future__ import annotations

from typing import Any

from ..runtime.backends.report_hint import REPORT_TOOL

FORMAT = 1


def report_doc(rows, best, why: str, best_file: str, context: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready report: `context` (model, machine, settings) + rows + the choice."""
    return {"tool": REPORT_TOOL, "format": FORMAT, **context,
            "rows": [r.to_dict() for r in rows],
            "best": {"file": best_file, "candidate": best.name, "runtime": best.runtime, "p50_ms": best.p50,
                     "speedup": best.speedup, "map50": best.map50, "map": best.map, "score": best.score,
                     "drop": best.drop, "drop_interval": [best.drop_lo, best.drop_hi]},
            "why": why}


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _interval(r: dict[str, Any]) -> str:
    lo, hi = r.get("drop_lo"), r.get("drop_hi")
    return "-" if lo is None or hi is None else f"{lo:+.2f}..{hi:+.2f}"


def render_table(doc: dict[str, Any]):
    """A rich Table of the report's rows."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"optimize: {doc['model']} ({doc['accuracy']['metric']}, {doc['accuracy']['images']} images; "
                    f"latency {doc['timing']['runs']} interleaved runs, {doc['threads']} threads)")
    modes = any(r.get("throughput_ips") is not None for r in doc["rows"])
    cols = ("candidate", "backend", "precision", "p50 ms", "p90 ms", "speedup",
            *(("img/s latency", "img/s throughput") if modes else ()), "mAP@0.5", "mAP@.5:.95",
            "drop", "95% interval", "", "status")
    for col in cols:
        t.add_column(col, justify="left" if col in ("candidate", "backend", "precision", "status", "") else "right")
    for r in doc["rows"]:
        mark = ("best" if r["chosen"] else "") + (" pareto" if r["pareto"] else "")
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
        if r["status"] == "ok" and not r["within_budget"]:
            status = "over budget" if r.get("images_needed") is None else f"undecided (~{r['images_needed']} images)"
        ips = (_num(r.get("latency_ips"), ".2f"), _num(r.get("throughput_ips"), ".2f")) if modes else ()
        t.add_row(escape(r["name"]), r["backend"], r["precision"], _num(r["p50"], ".1f"), _num(r["p90"], ".1f"),
                  _num(r["speedup"], ".2f"), *ips, _num(r["map50"], ".4f"), _num(r["map"], ".4f"),
                  _num(r["drop"], "+.2f"), _interval(r), mark.strip(), escape(status),
                  style="bold green" if r["chosen"] else ("dim" if r["status"] != "ok" else None))
    return t
