"""Draw detections on a BGR image: a box per detection and a filled label "name 0.87"."""
from __future__ import annotations

import cv2
import numpy as np

from .results import Detections

# A fixed palette (BGR) so that a class keeps its colour across images and runs.
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207),
           (10, 249, 72), (23, 204, 146), (134, 219, 61), (211, 188, 52), (255, 194, 0),
           (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82),
           (255, 56, 203), (200, 149, 255), (199, 55, 255))


def class_color(cls: int) -> tuple[int, int, int]:
    return PALETTE[int(cls) % len(PALETTE)]


def draw_detections(image: np.ndarray, det: Detections, line_width: int | None = None) -> np.ndarray:
    """A copy of `image` ndarray[H, W, 3] uint8 BGR with `det` drawn (boxes rounded to pixels)."""
    out = np.ascontiguousarray(image).copy()
    lw = line_width or max(round(sum(out.shape[:2]) / 2 * 0.003), 2)
    font_scale = lw / 3
    thick = max(lw - 1, 1)
    for box, score, cls in zip(det.xyxy, det.scores, det.classes):
        color = class_color(int(cls))
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness=lw, lineType=cv2.LINE_AA)
        label = f"{det.name(int(cls))} {float(score):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        above = y1 - th - base - 3 >= 0
        ty = y1 - base - 2 if above else y1 + th + 2
        cv2.rectangle(out, (x1, ty - th - 2), (x1 + tw + 2, ty + base), color, -1, cv2.LINE_AA)
        cv2.putText(out, label, (x1 + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255),
                    thick, cv2.LINE_AA)
    return out
