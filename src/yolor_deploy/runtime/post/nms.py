"""Non-maximum suppression in NumPy, with upstream YOLOR's semantics.

`nms` is the greedy algorithm of `torchvision.ops.nms` (stable sort by decreasing score, suppress a
box when its IoU with a kept box is strictly greater than the threshold), vectorised by blocks.
IoU is computed in float64 so that the class offset of `batched_nms` is exact.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .boxes import box_convert

MAX_WH = 4096  # upstream's class offset (pixels) for class-aware NMS
MAX_NMS = 30_000  # upstream's cap on the boxes that enter NMS (highest scores first)


BLOCK = 256  # boxes resolved together: an IoU matrix of BLOCK x BLOCK per step


def _iou_gt(a: np.ndarray, area_a: np.ndarray, b: np.ndarray, area_b: np.ndarray, thr: float) -> np.ndarray:
    """ndarray[len(a), len(b)] bool: IoU > thr (NaN from 0/0 counts as not overlapping)."""
    w = np.maximum(0.0, np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]))
    h = np.maximum(0.0, np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]))
    inter = w * h
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_a[:, None] + area_b[None, :] - inter) > thr


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_det: int | None = None) -> np.ndarray:
    """Indices ndarray[K] (int64) of the boxes kept, by decreasing score.

    boxes: ndarray[N, 4] xyxy; scores: ndarray[N]. Ties keep input order. `max_det` stops early
    (same result as truncating the full answer).

    Exact greedy NMS, vectorised by blocks of the score-sorted boxes: a block is first cut by the
    boxes kept so far, then resolved inside by iterating keep[i] = alive[i] and no kept j < i
    overlaps i; entry i depends only on entries before it, so t iterations fix the first t
    entries and the fixed point is the greedy answer (usually reached in a few iterations).
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    b = np.asarray(boxes, dtype=np.float64)[order]
    areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    limit = n if max_det is None else max_det
    kept: list[np.ndarray] = []
    n_kept = 0
    for start in range(0, n, BLOCK):
        if n_kept >= limit:
            break
        blk, blk_area = b[start:start + BLOCK], areas[start:start + BLOCK]
        alive = np.ones(len(blk), dtype=bool)
        for k in kept:  # suppressed by a box kept in an earlier block
            alive &= ~_iou_gt(b[k], areas[k], blk, blk_area, iou_threshold).any(0)
        over = np.triu(_iou_gt(blk, blk_area, blk, blk_area, iou_threshold), 1)  # over[j, i], j < i
        keep = alive
        while True:
            new = alive & ~(over & keep[:, None]).any(0)
            if np.array_equal(new, keep):
                break
            keep = new
        idx = start + np.flatnonzero(keep)
        kept.append(idx)
        n_kept += len(idx)
    return order[np.concatenate(kept)[:limit]].astype(np.int64)


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    idxs: np.ndarray,
    iou_threshold: float,
    max_det: int | None = None,
) -> np.ndarray:
    """Class-aware `nms`: boxes of different `idxs` ndarray[N] never suppress each other.

    Done as upstream does, by shifting each class's boxes by `class * offset`; the offset is
    upstream's 4096 px, or more when the boxes span more than that.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    b = np.asarray(boxes, dtype=np.float64)
    offset = max(float(MAX_WH), float(b.max() - b.min()) + 1.0)
    shifted = b + (np.asarray(idxs, dtype=np.float64) * offset)[:, None]
    return nms(shifted, scores, iou_threshold, max_det)


def non_max_suppression(
    pred: np.ndarray,
    conf_thres: float = 0.25,
    iou_thres: float = 0.45,
    classes: Sequence[int] | None = None,
    agnostic: bool = False,
    multi_label: bool | None = None,
    max_det: int = 300,
) -> list[np.ndarray]:
    """Upstream `non_max_suppression` on raw decoded predictions.

    pred: ndarray[B, N, 5+nc] = (cx, cy, w, h, obj, cls...), sigmoided. Per image: candidates with
    obj > conf_thres; conf = obj * cls; multi-label (every class with conf > conf_thres; default
    when nc > 1) or best class only; optional class filter (an empty list filters nothing, as
    upstream); class-aware NMS unless `agnostic`; at most MAX_NMS candidates (the highest scores) enter
    NMS, as upstream; rows with non-finite boxes or scores are dropped; at most `max_det` detections.
    Returns B arrays ndarray[K, 6] float32 = (x1, y1, x2, y2, conf, cls), by decreasing conf.
    """
    pred = np.asarray(pred)
    if pred.ndim != 3 or pred.shape[-1] < 6:
        raise ValueError(f"expected predictions [B, N, 5+nc], got shape {pred.shape}")
    nc = pred.shape[-1] - 5
    if multi_label is None:
        multi_label = nc > 1
    out = []
    for x in pred:
        x = x[x[:, 4] > conf_thres]
        if not len(x):
            out.append(np.zeros((0, 6), dtype=np.float32))
            continue
        cls_conf = x[:, 5:] * x[:, 4:5]
        box = box_convert(x[:, :4], "cxcywh", "xyxy")
        if multi_label:
            i, j = np.nonzero(cls_conf > conf_thres)
            box, conf = box[i], cls_conf[i, j]
        else:
            j = cls_conf.argmax(1)
            conf = cls_conf[np.arange(len(j)), j]
            keep = conf > conf_thres
            box, conf, j = box[keep], conf[keep], j[keep]
        if classes:
            keep = np.isin(j, np.asarray(list(classes)))
            box, conf, j = box[keep], conf[keep], j[keep]
        finite = np.isfinite(box).all(1) & np.isfinite(conf)
        if not finite.all():  # a broken model's NaN/inf rows are no detections
            box, conf, j = box[finite], conf[finite], j[finite]
        if len(box) > MAX_NMS:  # as upstream: only the MAX_NMS highest scores enter NMS
            top = np.argsort(-conf, kind="stable")[:MAX_NMS]
            box, conf, j = box[top], conf[top], j[top]
        if not len(box):
            out.append(np.zeros((0, 6), dtype=np.float32))
            continue
        idxs = np.zeros_like(j) if agnostic else j
        k = batched_nms(box, conf, idxs, iou_thres, max_det)
        det = np.concatenate((box[k], conf[k, None], j[k, None].astype(box.dtype)), axis=1)
        out.append(det.astype(np.float32, copy=False))
    return out
