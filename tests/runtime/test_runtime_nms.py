"""NumPy NMS against plain-Python references on random boxes; box helpers."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yolor_deploy.runtime import batched_nms, box_convert, box_iou, nms, non_max_suppression
from yolor_deploy.runtime.post.nms import BLOCK


# --- plain-Python references -----------------------------------------------------------------
def ref_iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union != 0 else math.nan


def ref_nms(boxes, scores, thr, cls=None) -> list[int]:
    """Greedy NMS, one box at a time; with `cls`, only boxes of the same class compete."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # sorted() is stable
    keep: list[int] = []
    for i in order:
        if all(not (ref_iou(boxes[j], boxes[i]) > thr) for j in keep if cls is None or cls[j] == cls[i]):
            keep.append(i)
    return keep


def ref_non_max_suppression(x, conf_thres, iou_thres, classes=None, agnostic=False, max_det=300):
    """Upstream semantics for one image, row by row: list of (x1, y1, x2, y2, conf, cls).

    Box corners and obj*cls in float32 scalars, thresholds as float32 (what torch does with a
    float32 tensor and a Python number), IoU in Python floats."""
    f32, two, thr = np.float32, np.float32(2), np.float32(conf_thres)
    cands = []
    for row in x:
        if not row[4] > thr:
            continue
        cx, cy, w, h = row[:4]
        box = [float(cx - w / two), float(cy - h / two), float(cx + w / two), float(cy + h / two)]
        for c, p in enumerate(row[5:]):
            conf = f32(p * row[4])
            if conf > thr and (not classes or c in classes):
                cands.append((*box, float(conf), c))
    keep = ref_nms([c[:4] for c in cands], [c[4] for c in cands], iou_thres,
                   None if agnostic else [c[5] for c in cands])
    return [cands[i] for i in keep[:max_det]]


# --- strategies ------------------------------------------------------------------------------
def random_boxes(rng: np.random.Generator, n: int, span: float = 200.0, grid: bool = False):
    xy = rng.uniform(0, span, (n, 2))
    wh = rng.uniform(0, span / 3, (n, 2))
    if grid:  # integer corners: exact ties in IoU and identical boxes happen
        xy, wh = np.round(xy / 10) * 10, np.round(wh / 10) * 10
    return np.concatenate([xy, xy + wh], 1)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 2 * BLOCK + 20),
       thr=st.floats(0.0, 1.0), grid=st.booleans(), tied=st.booleans())
def test_nms_equals_reference(seed, n, thr, grid, tied):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, grid=grid)
    scores = rng.integers(0, 5, n).astype(float) if tied else rng.random(n)
    got = nms(boxes, scores, thr)
    assert got.dtype == np.int64
    assert got.tolist() == ref_nms(boxes.tolist(), scores.tolist(), thr)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), nc=st.integers(1, 5), thr=st.floats(0.05, 0.95))
def test_batched_nms_equals_per_class_reference(seed, n, nc, thr):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, span=5000.0)  # wider than the 4096 px class offset
    scores, cls = rng.random(n), rng.integers(0, nc, n)
    got = batched_nms(boxes, scores, cls, thr)
    assert got.tolist() == ref_nms(boxes.tolist(), scores.tolist(), thr, cls.tolist())


def test_nms_max_det_is_a_prefix():
    rng = np.random.default_rng(1)
    boxes, scores = random_boxes(rng, 900), rng.random(900)
    full = nms(boxes, scores, 0.5)
    assert nms(boxes, scores, 0.5, max_det=7).tolist() == full[:7].tolist()


def test_nms_degenerate_boxes_kept_like_torchvision():
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]], float)  # 0/0 IoU is NaN: not > thr
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 1, 2]


def _pred(rng, b: int, n: int, nc: int) -> np.ndarray:
    xy = rng.uniform(0, 320, (b, n, 2))
    wh = rng.uniform(2, 120, (b, n, 2))
    return np.concatenate([xy, wh, rng.random((b, n, 1 + nc)) ** 0.5], -1).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nc=st.integers(1, 4), conf=st.floats(0.05, 0.9),
       iou=st.floats(0.1, 0.9), agnostic=st.booleans(), filt=st.booleans(), max_det=st.integers(1, 300))
def test_non_max_suppression_matches_upstream_semantics(seed, nc, conf, iou, agnostic, filt, max_det):
    rng = np.random.default_rng(seed)
    pred = _pred(rng, 2, 150, nc)
    classes = [0, nc - 1] if filt else None
    out = non_max_suppression(pred, conf, iou, classes=classes, agnostic=agnostic,
                              multi_label=True, max_det=max_det)
    assert len(out) == 2
    for x, det in zip(pred, out):
        ref = np.array(ref_non_max_suppression(x, conf, iou, classes, agnostic, max_det), np.float32)
        assert det.dtype == np.float32
        np.testing.assert_array_equal(det, ref.reshape(-1, 6))


def test_non_max_suppression_single_label_and_multi_label_default():
    pred = np.array([[[100, 100, 50, 50, 0.9, 0.8, 0.7],  # both classes above 0.25 after obj*cls
                      [102, 101, 50, 50, 0.9, 0.1, 0.6],  # overlaps row 0
                      [300, 300, 20, 20, 0.2, 0.9, 0.9]]], np.float32)  # obj below conf_thres
    multi = non_max_suppression(pred, 0.25, 0.45)[0]  # nc = 2 > 1: multi-label by default
    assert multi[:, 5].tolist() == [0, 1]  # row 0 as class 0 (0.72) and class 1 (0.63); row 1 suppressed
    assert multi[:, 4] == pytest.approx([0.72, 0.63])
    single = non_max_suppression(pred, 0.25, 0.45, multi_label=False)[0]
    assert single[:, 5].tolist() == [0, 1]  # best class only: row 0 -> 0 (0.72), row 1 -> 1 (0.54)
    assert non_max_suppression(pred, 0.25, 0.45, classes=[1])[0][:, 5].tolist() == [1]
    assert len(non_max_suppression(pred, 0.25, 0.45, agnostic=True)[0]) == 1
    assert non_max_suppression(np.zeros((3, 0, 7), np.float32))[2].shape == (0, 6)


def test_box_helpers():
    b = np.array([[10, 20, 30, 60], [0, 0, 1, 1]], np.float32)
    for fmt in ("cxcywh", "xywh"):
        np.testing.assert_allclose(box_convert(box_convert(b, "xyxy", fmt), fmt, "xyxy"), b)
    np.testing.assert_allclose(box_convert(b, "xyxy", "xywh")[0], [10, 20, 20, 40])
    np.testing.assert_allclose(box_convert(b, "xyxy", "cxcywh")[0], [20, 40, 20, 40])
    rng = np.random.default_rng(0)
    x, y = random_boxes(rng, 7), random_boxes(rng, 5)
    m = box_iou(x, y)
    assert m.shape == (7, 5)
    for i in range(7):
        for j in range(5):
            r = ref_iou(x[i].tolist(), y[j].tolist())
            assert m[i, j] == pytest.approx(0.0 if math.isnan(r) else r)
    with pytest.raises(ValueError):
        box_convert(b, "xyxy", "yxyx")
