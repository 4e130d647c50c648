"""The verification report as a rich Table."""
from __future__ import annotations

from .verify import FAIL, NOT_CHECKED, OK, VerifyReport

_STYLE = {OK: "green", FAIL: "bold red", NOT_CHECKED: "yellow"}


def _status(s: str) -> str:
    return f"[{_STYLE[s]}]{s}[/]"


def report_table(report: VerifyReport, title: str | None = None):
    """fp32 models: one row per (case, column group), showing the statistic with the worst ratio (err and
    tolerance in rule units: box errors relative to box size, probabilities absolute). fp16 models: one
    row per case, judged on detections."""
    from rich.table import Table

    t = Table(title=title or "verification vs float64 PyTorch (tolerance = 3 x the model's own fp32 noise + floor)",
              title_justify="left")
    for col in ("case", "shape", "group", "stat", "err", "fp32 noise", "tolerance", "err/tol",
                "max abs vs fp32", "detections", "status"):
        t.add_column(col, justify="right" if col in ("err", "fp32 noise", "tolerance", "err/tol") else "left")
    for tc in report.transforms:  # export only: folds and rewrites vs the checkpoint, float64
        t.add_row(tc.name, "float64", "all", "max", f"{tc.err:.3g}", "-", f"{tc.tolerance:.3g}", f"{tc.ratio:.2g}",
                  "", "", _status(OK if tc.passed else FAIL))
        if not tc.passed:
            t.add_row("", "", f"[dim]{tc.reason}[/]", *[""] * 8)
    for c in report.cases:
        det = "-" if c.detections is None else f"{c.detections.matched}/{c.detections.total}"
        shape = "x".join(map(str, c.output_shape))
        if not c.groups:
            how = "judged on detections" if c.shape_ok else c.reason
            t.add_row(c.name, shape, how, "", "", "", "", "", f"{c.max_abs:.3g}", det, _status(c.status))
            if c.status != OK and c.groups == [] and c.shape_ok:
                t.add_row("", "", f"[dim]{c.reason}[/]", *[""] * 8)
            continue
        for k, g in enumerate(c.groups):
            first, last = k == 0, k == len(c.groups) - 1
            st = OK if g.passed else FAIL
            if last and c.status != OK and all(x.passed for x in c.groups):
                st = c.status
            t.add_row(c.name if first else "", shape if first else "", g.group, g.stat, f"{g.onnx_err:.3g}",
                      f"{g.torch_err:.3g}", f"{g.tolerance:.3g}", f"{g.ratio:.2f}",
                      f"{c.max_abs:.3g}" if first else "", det if first else "", _status(st))
        if c.status != OK and c.reason:
            t.add_row("", "", f"[dim]{c.reason}[/]", *[""] * 8)
    for label, n in (("nms graph", report.nms), ("openvino nms graph", report.nms_openvino)):
        if n is not None:
            t.add_row(label, "", n.mode, "", "", "", "", "", "", f"{n.matched}/{n.detections}",
                      _status(OK if n.passed else FAIL))
    if report.graph is not None:
        t.add_row("graph", "", f"ScatterND {report.graph.scatternd}", *[""] * 7,
                  _status(OK if report.graph.passed else FAIL))
    return t
