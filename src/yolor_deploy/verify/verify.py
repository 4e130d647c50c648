"""Verify an exported ONNX model against the PyTorch model it came from.

Raw outputs ([B, N, 5+nc] before NMS) are judged with the noise-floor rule of `tolerance.py`
(fp32 exports) on a letterboxed real image and on random input, and for dynamic exports also at
another size with batch 2. Detections after NMS are matched by IoU and reported (they gate half
exports, whose raw error is fp16's, not fp32's). NMS graphs are checked against NumPy NMS run on
the very predictions they receive.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..runtime.letterbox import letterbox
from ..runtime.nms import non_max_suppression
from .matching import MatchResult, match_detections
from .tolerance import GroupCheck, check_groups, max_diffs

HALF_MIN_MATCH = 0.8  # detection match rate a --half export must reach against fp32 PyTorch


@dataclass
class CaseReport:
    name: str
    input_shape: tuple
    output_shape: tuple
    shape_ok: bool
    max_abs: float  # vs PyTorch fp32
    max_rel: float
    groups: list[GroupCheck]
    detections: MatchResult | None
    passed: bool


@dataclass
class VerifyReport:
    cases: list[CaseReport] = field(default_factory=list)
    nms: dict | None = None
    half: bool = False
    nms_openvino: dict | None = None  # the NMS graph in OpenVINO, when an OpenVINO IR was made

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases) and all(n is None or n.get("passed", False)
                                                         for n in (self.nms, self.nms_openvino))

    def to_dict(self) -> dict:
        def case(c: CaseReport) -> dict:
            d = asdict(c)
            if c.detections is not None:
                d["detections"]["rate"] = c.detections.rate
            return d

        return {"passed": self.passed, "half": self.half, "cases": [case(c) for c in self.cases], "nms": self.nms,
                "nms_openvino": self.nms_openvino}

    def write_json(self, path: str | Path) -> None:
        from ..runtime.atomic import write_json

        write_json(path, self.to_dict(), indent=2)

    def failures(self) -> list[str]:
        out = []
        for c in self.cases:
            if not c.shape_ok:
                out.append(f"{c.name}: output shape {c.output_shape}")
            if not self.half:
                out += [f"{c.name}/{g.group}: err {g.onnx_err:.3g} > tol {g.tolerance:.3g}" for g in c.groups
                        if not g.passed]
            if c.detections is not None and self.half and c.detections.rate < HALF_MIN_MATCH:
                out.append(f"{c.name}: detection match {c.detections.rate:.0%} < {HALF_MIN_MATCH:.0%}")
        for label, n in (("nms", self.nms), ("openvino nms", self.nms_openvino)):
            if n is not None and not n.get("passed", False):
                out.append(f"{label}: {n.get('reason', 'detections differ from NumPy NMS')}")
        return out


def image_input(path: str | Path, hw: tuple[int, int], stride: int) -> np.ndarray:
    """The letterboxed, RGB, 0..1, NCHW float32 tensor upstream detect.py would feed (fixed size)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: cannot read image")
    lb = letterbox(img, hw, auto=False, stride=stride).image
    return np.ascontiguousarray(lb[:, :, ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0


def verification_inputs(hw: tuple[int, int], batch: int, stride: int, dynamic: bool,
                        image: str | Path | None) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    if image is not None:
        x = image_input(image, hw, stride)
        cases.append((f"image {hw[0]}x{hw[1]}", np.repeat(x, batch, 0)))
    cases.append((f"random {hw[0]}x{hw[1]}", rng.random((batch, 3, *hw), dtype=np.float32)))
    if dynamic:  # two other sizes (one smaller, one larger) at batch 2: catches sizes baked into the graph
        for other in ((max(stride, hw[0] - stride), hw[1] + stride), (hw[0] + 2 * stride, max(stride, hw[1] - stride))):
            cases.append((f"random {other[0]}x{other[1]} b2", rng.random((2, 3, *other), dtype=np.float32)))
    return cases


def _nms(pred: np.ndarray, conf: float, iou: float, max_det: int) -> list[np.ndarray]:
    return non_max_suppression(pred, conf_thres=conf, iou_thres=iou, max_det=max_det)


def verify_raw(model: torch.nn.Module, session, inputs, half: bool = False, conf_thres: float = 0.25,
               iou_thres: float = 0.45, max_det: int = 300) -> VerifyReport:
    """Compare ORT `session` ([B,N,5+nc] output) with PyTorch fp32 and fp64 forwards of `model`."""
    m32 = model.float().eval()
    m64 = m32.clone().double()
    name = session.get_inputs()[0].name
    report = VerifyReport(half=half)
    for label, x in inputs:
        with torch.no_grad():
            t32 = m32(torch.from_numpy(x)).numpy()
            t64 = m64(torch.from_numpy(x).double()).numpy()
        y = session.run(None, {name: x})[0]
        shape_ok = y.shape == t32.shape
        if not shape_ok:
            report.cases.append(CaseReport(label, x.shape, y.shape, False, np.inf, np.inf, [], None, False))
            continue
        groups = check_groups(y, t32, t64)
        mabs, mrel = max_diffs(y, t32)
        d_ref, d_onnx = _nms(t32, conf_thres, iou_thres, max_det), _nms(y, conf_thres, iou_thres, max_det)
        det = [match_detections(a, b) for a, b in zip(d_ref, d_onnx)]
        det = MatchResult(sum(d.n_ref for d in det), sum(d.n_test for d in det), sum(d.matched for d in det),
                          max(d.max_score_diff for d in det), min(d.min_iou for d in det))
        ok = det.rate >= HALF_MIN_MATCH if half else all(g.passed for g in groups)
        report.cases.append(CaseReport(label, x.shape, y.shape, True, mabs, mrel, groups, det, ok))
    return report


def verify_nms_graph(raw_session, nms_session, inputs, conf_thres: float, iou_thres: float,
                     max_det: int) -> dict:
    """The NMS graph's detections vs NumPy NMS on the same raw predictions (from `raw_session`)."""
    name = raw_session.get_inputs()[0].name
    total = matched = 0
    worst = 0.0
    for _, x in inputs:
        pred = raw_session.run(None, {name: x})[0]
        num, boxes, scores, classes = nms_session.run(None, {name: x})
        ref = _nms(pred, conf_thres, iou_thres, max_det)
        for b in range(len(x)):
            k = int(num[b, 0])
            got = np.concatenate([boxes[b, :k], scores[b, :k, None], classes[b, :k, None].astype(np.float32)], 1)
            want = ref[b]
            if len(want) >= max_det:  # cut at max_det: rows tied with the last kept score may differ
                cut = want[-1, 4]
                want, got = want[want[:, 4] > cut], got[got[:, 4] > cut]
            r = match_detections(want, got, iou_thres=0.999)
            total += max(r.n_ref, r.n_test)
            matched += r.matched
            worst = max(worst, r.max_score_diff)
    rate = 1.0 if total == 0 else matched / total
    passed = rate == 1.0 and worst <= 1e-5
    return {"mode": "onnx", "detections": total, "matched": matched, "rate": rate, "max_score_diff": worst,
            "passed": passed, "reason": "" if passed else f"{matched}/{total} matched, score diff {worst:.2g}"}


def report_table(report: VerifyReport):
    """A rich Table: one row per (case, column group)."""
    from rich.table import Table

    t = Table(title="verification: ONNX model (ONNX Runtime; OpenVINO rows when asked) vs PyTorch, errors against float64 PyTorch")
    for col in ("case", "shape", "group", "onnx err", "torch fp32 err", "tolerance", "max abs / rel vs fp32",
                "detections matched", "pass"):
        t.add_column(col)
    for c in report.cases:
        det = "-" if c.detections is None else f"{c.detections.matched}/{max(c.detections.n_ref, c.detections.n_test)}"
        for k, g in enumerate(c.groups or [None]):
            first = k == 0
            t.add_row(c.name if first else "", str(tuple(c.output_shape)) if first else "",
                      g.group if g else "-", f"{g.onnx_err:.3g}" if g else "-", f"{g.torch_err:.3g}" if g else "-",
                      f"{g.tolerance:.3g}" if g else "-", f"{c.max_abs:.3g} / {c.max_rel:.3g}" if first else "",
                      det if first else "", ("ok" if (g.passed if g and not report.half else c.passed) else "FAIL"))
    for label, n in (("nms graph", report.nms), ("openvino nms graph", report.nms_openvino)):
        if n is not None:
            t.add_row(label, "", n.get("mode", ""), "", "", "", "", f"{n.get('matched', '-')}/{n.get('detections', '-')}",
                      "ok" if n.get("passed") else "FAIL")
    return t
