"""`--backend auto` and the report `yolor-deploy optimize` leaves beside the model it picked.

Convention: `optimize --out DIR` writes `DIR/report.json` and the chosen model `DIR/best.onnx` or
`DIR/best.xml` (+ `.bin`). The report's `"best"` entry names that file and how it was measured
(`"runtime"`: backend, OpenVINO inference precision, threads; the same `contract.RuntimeHint` the
model carries in its own metadata). When a model is opened with backend "auto" and a `report.json`
in its folder names it as best, the runtime runs it that way. A report that is not ours, or names
another file, is ignored; one of ours that is malformed is refused (one line naming it).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..contract import MetadataError, RuntimeHint
from ..errors import InputError

REPORT_NAME = "report.json"
REPORT_TOOL = "yolor-deploy optimize"
MAX_REPORT_BYTES = 8 << 20


def report_path(model: str | Path) -> Path:
    """Where `optimize` leaves the report for a model it wrote: `report.json` in the model's folder."""
    return Path(model).parent / REPORT_NAME


def read_report(path: str | Path) -> dict | None:
    """The JSON object of an optimize report at `path`; None when absent or not written by optimize."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_REPORT_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("tool") == REPORT_TOOL else None


def report_hint(model: str | Path) -> RuntimeHint | None:
    """The runtime settings that the optimize report beside `model` recorded for it, or None when there
    is no such report or it picked another file."""
    model = Path(model)
    doc = read_report(report_path(model))
    if doc is None:
        return None
    best = doc.get("best")
    if not isinstance(best, dict) or best.get("file") != model.name:
        return None
    try:
        return RuntimeHint.from_dict(best.get("runtime"))
    except MetadataError as e:
        raise InputError(f"{report_path(model)}: malformed optimize report ({e})") from None
