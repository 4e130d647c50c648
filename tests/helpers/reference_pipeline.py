"""An independent reference of upstream detect.py's pre- and post-processing around a raw ONNX model, written
here from upstream's conventions (spec/upstream.md) without any of the runtime's code, to judge the
runtime's own letterbox, colour order, NMS, scale-back and clipping on images where each matters
(odd paddings, both orientations, objects cut by the border).

Steps, as upstream: letterbox (r = min(H/h, W/w), unpadded size rounded, with `auto` the padding taken
modulo 64, split in halves with the odd pixel at the bottom/right, grey 114), BGR -> RGB, /255, NCHW;
NMS: rows with obj > conf, score = obj * cls, every (box, class) with score > conf (multi-label when
nc > 1), class-offset boxes (4096 px per class), greedy suppression at IoU > iou, 300 kept; boxes back
to the image: minus the pad, divided by the gain recomputed from the shapes, clipped to [0, w] x [0, h].
"""
from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

GREY, AUTO_MULTIPLE, CLASS_OFFSET = 114, 64, 4096.0


def letterbox_ref(img: np.ndarray, hw: tuple[int, int], auto: bool) -> np.ndarray:
    h, w = img.shape[:2]
    r = min(hw[0] / h, hw[1] / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    pw, ph = hw[1] - nw, hw[0] - nh
    if auto:
        pw, ph = pw % AUTO_MULTIPLE, ph % AUTO_MULTIPLE
    top, left = ph // 2, pw // 2  # the odd pixel goes to the bottom / right
    out = np.full((nh + ph, nw + pw, 3), GREY, np.uint8)
    out[top:top + nh, left:left + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR) \
        if (nw, nh) != (w, h) else img
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def nms_ref(pred: np.ndarray, conf: float, iou: float, max_det: int = 300) -> np.ndarray:
    """pred [N, 5+nc] (cx, cy, w, h, obj, cls...) -> [K, 6] (x1, y1, x2, y2, score, class), float64."""
    p = pred.astype(np.float64)
    p = p[p[:, 4] > conf]
    scores = p[:, 5:] * p[:, 4:5]
    xyxy = np.concatenate([p[:, :2] - p[:, 2:4] / 2, p[:, :2] + p[:, 2:4] / 2], 1)
    if scores.shape[1] > 1:
        i, j = np.nonzero(scores > conf)
        rows = np.concatenate([xyxy[i], scores[i, j, None], j[:, None].astype(np.float64)], 1)
    else:
        rows = np.concatenate([xyxy, scores, np.zeros((len(p), 1))], 1)
        rows = rows[rows[:, 4] > conf]
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    shifted = rows[:, :4] + rows[:, 5:6] * CLASS_OFFSET
    keep, alive = [], np.ones(len(rows), bool)
    for k in range(len(rows)):
        if alive[k]:
            keep.append(k)
            if len(keep) == max_det:
                break
            alive[k + 1:] &= _iou(shifted[k], shifted[k + 1:]) <= iou
    return rows[keep]


def scale_back_ref(rows: np.ndarray, in_hw: tuple[int, int], img_hw: tuple[int, int]) -> np.ndarray:
    gain = min(in_hw[0] / img_hw[0], in_hw[1] / img_hw[1])
    pad_x, pad_y = (in_hw[1] - img_hw[1] * gain) / 2, (in_hw[0] - img_hw[0] * gain) / 2
    out = rows.copy()
    out[:, [0, 2]] = np.clip((out[:, [0, 2]] - pad_x) / gain, 0, img_hw[1])
    out[:, [1, 3]] = np.clip((out[:, [1, 3]] - pad_y) / gain, 0, img_hw[0])
    return out


class ReferenceDetector:
    """upstream detect.py around a raw-output ONNX model ([B, N, 5+nc]); `auto` for a dynamic model."""

    def __init__(self, onnx_path, hw: tuple[int, int], auto: bool, conf: float = 0.25, iou: float = 0.45):
        self.sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.hw, self.auto, self.conf, self.iou = hw, auto, conf, iou

    def __call__(self, img: np.ndarray) -> np.ndarray:
        boxed = letterbox_ref(img, self.hw, self.auto)
        x = (boxed[:, :, ::-1].transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
        pred = self.sess.run(None, {self.sess.get_inputs()[0].name: x})[0][0]
        return scale_back_ref(nms_ref(pred, self.conf, self.iou), boxed.shape[:2], img.shape[:2])


def cut_images(folder_images: list[str]) -> list[np.ndarray]:
    """Real images cut so that each pre/post step matters: odd paddings (both orientations, landscape and
    portrait), objects cut by the border (boxes past the edge: clipping), one upscaled small image."""
    out = []
    for k, path in enumerate(folder_images[:6]):
        img = cv2.imread(path)
        h, w = img.shape[:2]
        cut = [img[: h - 59 - 2 * k, :], img[:, 37 + k: w - 20], img[40:, 30 + 3 * k:],
               cv2.resize(img, (w // 3 + k, h // 2 + 1))]
        out.append(np.ascontiguousarray(cut[k % len(cut)]))
        out.append(np.ascontiguousarray(cut[(k + 2) % len(cut)]))
    return out
