"""Judging detections after NMS, where raw numbers say little (fp16 networks, NMS-only models).

The exported model's detections are matched (IoU and class) with those of the float64 PyTorch forward;
its unmatched count must stay within FACTOR times the largest unmatched count of the model's own fp32
variants, plus one (a detection whose score sits on the threshold may flip). No detection on either
side checks nothing: such a case is "not checked", never a pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.post.nms import non_max_suppression
from .matching import MatchResult, match_detections
from .rule import FACTOR


@dataclass
class DetectionCheck:
    n_ref: int
    n_test: int
    matched: int
    max_score_diff: float
    min_iou: float
    noise_unmatched: int  # the largest unmatched count among the fp32 PyTorch variants
    tolerance: float

    @property
    def total(self) -> int:
        return max(self.n_ref, self.n_test)

    @property
    def unmatched(self) -> int:
        return self.total - self.matched

    @property
    def rate(self) -> float:
        return 1.0 if self.total == 0 else self.matched / self.total

    @property
    def checked(self) -> bool:
        return self.total > 0

    @property
    def passed(self) -> bool:
        return self.unmatched <= self.tolerance


def nms_all(pred: np.ndarray, conf_thres: float, iou_thres: float, max_det: int) -> list[np.ndarray]:
    """NumPy NMS on [B, N, 5+nc] predictions: per image ndarray[K, 6] (x1, y1, x2, y2, score, cls).
    Broken models give inf/NaN boxes: they are judged, not warned about."""
    with np.errstate(all="ignore"):
        return non_max_suppression(np.asarray(pred, dtype=np.float32), conf_thres=conf_thres,
                                   iou_thres=iou_thres, max_det=max_det)


def match_all(ref: list[np.ndarray], test: list[np.ndarray], iou_thres: float = 0.9) -> MatchResult:
    res = [match_detections(a, b, iou_thres) for a, b in zip(ref, test)]
    return MatchResult(sum(r.n_ref for r in res), sum(r.n_test for r in res), sum(r.matched for r in res),
                       max((r.max_score_diff for r in res), default=0.0), min((r.min_iou for r in res), default=1.0))


def check_detections(test: list[np.ndarray], ref: list[np.ndarray], variants: list[list[np.ndarray]],
                     factor: float = FACTOR) -> DetectionCheck:
    """`test`, `ref` (float64 PyTorch) and each variant: per image ndarray[K, 6] after NMS."""
    m = match_all(ref, test)
    noise = 0
    for v in variants:
        r = match_all(ref, v)
        noise = max(noise, max(r.n_ref, r.n_test) - r.matched)
    return DetectionCheck(m.n_ref, m.n_test, m.matched, m.max_score_diff, m.min_iou, noise, factor * noise + 1)


def check_half(test: list[np.ndarray], ref32: list[np.ndarray], min_rate: float) -> DetectionCheck:
    """fp16 networks: at least `min_rate` of the detections matched with fp32 PyTorch's."""
    m = match_all(ref32, test)
    total = max(m.n_ref, m.n_test)
    return DetectionCheck(m.n_ref, m.n_test, m.matched, m.max_score_diff, m.min_iou, 0,
                          float(np.floor(total * (1.0 - min_rate) + 1e-9)))
