"""Match two detection sets (after NMS) by IoU and class; tie order may differ between backends."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.post.boxes import box_iou


@dataclass
class MatchResult:
    n_ref: int
    n_test: int
    matched: int
    max_score_diff: float
    min_iou: float

    @property
    def rate(self) -> float:
        """Matched pairs over the larger set (1.0 when both are empty)."""
        n = max(self.n_ref, self.n_test)
        return 1.0 if n == 0 else self.matched / n


def match_detections(ref: np.ndarray, test: np.ndarray, iou_thres: float = 0.9) -> MatchResult:
    """ref, test: ndarray[K, 6] = (x1, y1, x2, y2, score, cls). Greedy by ref score, same class only."""
    if len(ref) == 0 or len(test) == 0:
        return MatchResult(len(ref), len(test), 0, 0.0, 1.0)
    a, b = ref[:, :4].astype(np.float64), test[:, :4].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.nan_to_num(box_iou(a, b), nan=0.0)
    iou[(a[:, None, :] == b[None, :, :]).all(-1)] = 1.0  # identical boxes match, degenerate (zero-area) ones too
    iou[ref[:, 5][:, None] != test[:, 5][None, :]] = -1.0
    used = np.zeros(len(test), dtype=bool)
    matched, sdiff, min_iou = 0, 0.0, 1.0
    for i in np.argsort(-ref[:, 4], kind="stable"):
        cand = np.where(~used, iou[i], -1.0)
        j = int(cand.argmax())
        if cand[j] >= iou_thres:
            used[j] = True
            matched += 1
            sdiff = max(sdiff, abs(float(ref[i, 4]) - float(test[j, 4])))
            min_iou = min(min_iou, float(cand[j]))
    return MatchResult(len(ref), len(test), matched, sdiff, min_iou)
