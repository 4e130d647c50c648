"""An optimize report's runtime settings, read only when asked (`--hint report.json`, `hint=` in Python).

`optimize --out DIR` writes `DIR/report.json` and the chosen model `DIR/best.onnx` or `DIR/best.xml` (+ `.bin`),
whose own metadata already carries how it was measured (`contract.RuntimeHint`: backend, OpenVINO inference
precision, threads); `--backend auto` follows that metadata and never looks beside the model, so a stray file
cannot change what a model does. A report is read only when the caller names it, e.g. to run another copy of
the measured model (or the fp32 source) the way the report says; it must be ours and name that model's file
(one line otherwise).
"""
from __future__ import annotations

import json
from pathlib import Path

from ...contract import MetadataError, RuntimeHint
from ...errors import InputError
from ...fs import NotRegularFileError, check_regular, open_regular

REPORT_NAME = "report.json"
REPORT_TOOL = "yolor-deploy optimize"
MAX_REPORT_BYTES = 8 << 20


def read_report(path: str | Path) -> dict | None:
    """The JSON object of an optimize report at `path`; None when absent or not written by optimize."""
    path = Path(path)
    try:
        if check_regular(path).st_size > MAX_REPORT_BYTES:
            return None
        with open_regular(path) as f:
            doc = json.loads(f.read(MAX_REPORT_BYTES + 1).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("tool") == REPORT_TOOL else None


def read_report_hint(report: str | Path, model: str | Path) -> RuntimeHint:
    """The runtime settings the optimize `report` recorded for its best model, which must be `model`'s file
    (by name); InputError (one line) when the report is missing, not ours, about another file or malformed."""
    report, model = Path(report), Path(model)
    try:
        check_regular(report)
    except NotRegularFileError as e:  # a FIFO would block; refused before it is opened
        raise InputError(f"{report}: cannot read ({e.strerror})") from None
    except OSError:
        pass  # missing: "not an optimize report" below
    doc = read_report(report)
    if doc is None:
        raise InputError(f"{report}: not an optimize report (written by `{REPORT_TOOL}`)")
    best = doc.get("best")
    named = best.get("file") if isinstance(best, dict) else None
    if not isinstance(best, dict) or named != model.name:
        raise InputError(f"{report}: the report's best model is {named!r}, not {model.name!r}")
    try:
        return RuntimeHint.from_dict(best.get("runtime"))
    except MetadataError as e:
        raise InputError(f"{report}: malformed optimize report ({e})") from None
