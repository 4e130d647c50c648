"""Verify an exported model against the PyTorch model it came from.

For each input (a letterboxed real image, random input, and for dynamic models two other sizes at
batch 2), the reference is a float64 PyTorch forward and the model's own fp32 noise is measured
(`noise.py`). Raw outputs ([B, N, 5+nc] before NMS) of fp32 models are judged with `rule.py`, and
their detections after NMS with `detections.py`; fp16 (`--half`) models on detections only. NMS
graphs are checked against NumPy NMS on the very predictions they receive; the graph itself must hold
no ScatterND (in-place slice writes, computed wrongly by several runtimes).

Each case ends "ok", "FAIL" or "not checked" (with its reason: a model whose output does not depend
on its input, or no detection on either side where detections are the judge). A report passes when
nothing failed, and is conclusive when at least one case was checked.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..runtime.inputs.letterbox import letterbox
from ..runtime.inputs.opencv import cv2
from .detections import DetectionCheck, check_detections, check_half, nms_all
from .matching import match_detections
from .noise import Reference
from .rule import GroupCheck, check_groups, errors, max_diffs, noise_stats

if TYPE_CHECKING:
    from .transforms import TransformCheck

HALF_MIN_MATCH = 0.8  # detection match rate a --half export must reach against fp32 PyTorch
INPUT_INDEPENDENT = 1e-3  # largest output change (rule units) under an inverted input, below which
# the model ignores its input: nothing input-specific can be checked
OK, FAIL, NOT_CHECKED = "ok", "FAIL", "not checked"


@dataclass
class CaseReport:
    name: str
    input_shape: tuple
    output_shape: tuple
    shape_ok: bool
    max_abs: float  # vs PyTorch fp32
    max_rel: float
    groups: list[GroupCheck]
    detections: DetectionCheck | None
    status: str = OK  # OK | FAIL | NOT_CHECKED
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.status != FAIL

    @property
    def worst(self) -> GroupCheck | None:
        return max(self.groups, key=lambda g: g.ratio, default=None)


@dataclass
class NmsCheck:
    """An NMS graph's detections against NumPy NMS run on the very predictions it receives."""

    mode: str  # "onnx" | "trt"
    detections: int = 0
    matched: int = 0
    max_score_diff: float = 0.0
    passed: bool = True
    reason: str = ""
    note: str = ""

    @property
    def rate(self) -> float:
        return 1.0 if self.detections == 0 else self.matched / self.detections


@dataclass
class GraphCheck:
    """Structural checks of the ONNX graph."""

    scatternd: int = 0

    @property
    def passed(self) -> bool:
        return self.scatternd == 0

    @property
    def reason(self) -> str:
        return "" if self.passed else (f"{self.scatternd} ScatterND nodes (in-place slice writes in the decode: "
                                       "TensorRT, OpenVINO and older runtimes compute them wrong)")


@dataclass
class VerifyReport:
    cases: list[CaseReport] = field(default_factory=list)
    nms: NmsCheck | None = None
    half: bool = False
    nms_openvino: NmsCheck | None = None  # the NMS graph in OpenVINO, when an OpenVINO IR was made
    graph: GraphCheck | None = None
    transforms: list[TransformCheck] = field(default_factory=list)  # folds and rewrites, float64 (export only)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases) and all(t.passed for t in self.transforms) and all(
            n is None or n.passed for n in (self.nms, self.nms_openvino, self.graph))

    @property
    def checked(self) -> bool:
        """At least one case was judged (not all 'not checked')."""
        return any(c.status != NOT_CHECKED for c in self.cases)

    @property
    def status(self) -> str:
        return FAIL if not self.passed else (OK if self.checked else NOT_CHECKED)

    @property
    def max_ratio(self) -> float:
        """The largest err / tolerance over all judged column groups (the margin of a passing export)."""
        return max((g.ratio for c in self.cases for g in c.groups), default=0.0)

    def to_dict(self) -> dict:
        def case(c: CaseReport) -> dict:
            d = asdict(c)
            d["groups"] = [{**asdict(g), "ratio": g.ratio} for g in c.groups]
            if c.detections is not None:
                det = c.detections
                d["detections"].update(rate=det.rate, unmatched=det.unmatched, total=det.total)
            return d

        return {"passed": self.passed, "status": self.status, "half": self.half, "max_ratio": self.max_ratio,
                "cases": [case(c) for c in self.cases], "nms": _check_dict(self.nms),
                "nms_openvino": _check_dict(self.nms_openvino), "graph": _check_dict(self.graph),
                "transforms": [t.to_dict() for t in self.transforms]}

    def write_json(self, path: str | Path) -> None:
        from ..fs import write_json

        write_json(path, self.to_dict(), indent=2)

    def failures(self) -> list[str]:
        out = [f"{t.name}: {t.reason}" for t in self.transforms if not t.passed]
        for c in self.cases:
            if c.status == FAIL:
                out.append(f"{c.name}: {c.reason}")
        for label, n in (("nms", self.nms), ("openvino nms", self.nms_openvino), ("graph", self.graph)):
            if n is not None and not n.passed:
                out.append(f"{label}: {n.reason}")
        return out

    def not_checked(self) -> list[str]:
        return [f"{c.name}: {c.reason}" for c in self.cases if c.status == NOT_CHECKED]


def image_input(path: str | Path, hw: tuple[int, int], stride: int) -> np.ndarray:
    """The letterboxed, RGB, 0..1, NCHW float32 tensor upstream detect.py would feed (fixed size)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot read image")
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


def input_independent(ref: Reference) -> bool:
    """The model gives (nearly) the same output for 1 - x as for x: it ignores its input."""
    if ref.inverted_fp32 is None:
        return False
    change = errors(ref.inverted_fp32, ref.plain.astype(np.float64))
    return all(e.size == 0 or float(e.max()) < INPUT_INDEPENDENT for e in change.values())


def judge_raw(y: np.ndarray, ref: Reference, name: str, half: bool = False, conf_thres: float = 0.25,
              iou_thres: float = 0.45, max_det: int = 300) -> CaseReport:
    """One case: `y` ([B, N, 5+nc], the exported model's raw output) against the PyTorch references."""
    x = ref.x
    if y.shape != ref.fp64.shape:
        return CaseReport(name, x.shape, y.shape, False, np.inf, np.inf, [], None, FAIL,
                          f"output shape {tuple(y.shape)}, PyTorch gives {tuple(ref.fp64.shape)}")
    mabs, mrel = max_diffs(y, ref.plain)
    ref_dets = nms_all(ref.plain if half else ref.fp64, conf_thres, iou_thres, max_det)
    test_dets = nms_all(y, conf_thres, iou_thres, max_det)
    if half:  # fp16 activations: numbers are fp16's, not fp32's; judged on detections
        det = check_half(test_dets, ref_dets, HALF_MIN_MATCH)
        case = CaseReport(name, x.shape, y.shape, True, mabs, mrel, [], det)
        if not det.checked:
            case.status, case.reason = NOT_CHECKED, "no detections on either side: nothing to compare"
        elif not det.passed:
            case.status, case.reason = FAIL, f"detection match {det.rate:.0%} < {HALF_MIN_MATCH:.0%}"
    else:
        groups = check_groups(y, ref.fp64, noise_stats(ref.fp64, list(ref.fp32.values())))
        variants = [nms_all(v, conf_thres, iou_thres, max_det) for v in ref.fp32.values()]
        det = check_detections(test_dets, ref_dets, variants)
        case = CaseReport(name, x.shape, y.shape, True, mabs, mrel, groups, det)
        bad = [g for g in groups if not g.passed]
        if bad:
            case.status = FAIL
            case.reason = "; ".join(f"{g.group} {g.stat} err {g.onnx_err:.3g} > tol {g.tolerance:.3g} "
                                    f"({g.ratio:.3g}x)" for g in bad)
        elif not det.passed:
            case.status = FAIL
            case.reason = (f"{det.unmatched} of {det.total} detections unmatched (fp32 PyTorch variants: "
                           f"{det.noise_unmatched})")
    if case.status == OK and input_independent(ref):
        case.status, case.reason = NOT_CHECKED, "the output does not depend on the input (same for 1 - x)"
    return case


def verify_raw(session, refs: list[tuple[str, Reference]], half: bool = False, conf_thres: float = 0.25,
               iou_thres: float = 0.45, max_det: int = 300) -> VerifyReport:
    """Judge `session` (ORT-like: `get_inputs()[0].name`, `run(None, feeds)`; first output [B,N,5+nc])."""
    name = session.get_inputs()[0].name
    report = VerifyReport(half=half)
    for label, ref in refs:
        y = session.run(None, {name: ref.x})[0]
        report.cases.append(judge_raw(y, ref, label, half, conf_thres, iou_thres, max_det))
    return report


def judge_nms_only(dets: list[np.ndarray], ref: Reference, name: str, conf_thres: float, iou_thres: float,
                   max_det: int) -> CaseReport:
    """A model that gives only detections (NMS inside, raw output unreachable): judged on detections."""
    variants = [nms_all(v, conf_thres, iou_thres, max_det) for v in ref.fp32.values()]
    det = check_detections(dets, nms_all(ref.fp64, conf_thres, iou_thres, max_det), variants)
    case = CaseReport(name, ref.x.shape, (len(dets),), True, float("nan"), float("nan"), [], det)
    if not det.checked:
        case.status, case.reason = NOT_CHECKED, "no detections on either side: nothing to compare"
    elif not det.passed:
        case.status = FAIL
        case.reason = f"{det.unmatched} of {det.total} detections unmatched (fp32 PyTorch: {det.noise_unmatched})"
    elif input_independent(ref):
        case.status, case.reason = NOT_CHECKED, "the output does not depend on the input (same for 1 - x)"
    return case


def graph_checks(op_counts: dict[str, int]) -> GraphCheck:
    """Structural checks of an ONNX graph from its op counts."""
    return GraphCheck(scatternd=int(op_counts.get("ScatterND", 0)))


def _check_dict(c: NmsCheck | GraphCheck | None) -> dict | None:
    return None if c is None else {**asdict(c), "passed": c.passed, "reason": c.reason,
                                   **({"rate": c.rate} if isinstance(c, NmsCheck) else {})}


def verify_nms_graph(raw_session, nms_session, inputs, conf_thres: float, iou_thres: float,
                     max_det: int) -> NmsCheck:
    """The NMS graph's detections vs NumPy NMS on the same raw predictions (from `raw_session`)."""
    name = raw_session.get_inputs()[0].name
    total = matched = 0
    worst = 0.0
    for _, x in inputs:
        pred = raw_session.run(None, {name: x})[0]
        num, boxes, scores, classes = nms_session.run(None, {name: x})
        ref = nms_all(pred, conf_thres, iou_thres, max_det)
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
    passed = matched == total and worst <= 1e-5
    return NmsCheck("onnx", total, matched, worst, passed,
                    "" if passed else f"{matched}/{total} matched, score diff {worst:.2g}")


