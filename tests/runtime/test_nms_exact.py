"""`non_max_suppression` edge cases with hand-computed answers (fast killer tests for runtime/post/nms.py);
the random comparisons against a plain reference are in test_runtime_nms.py."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from yolor_deploy.runtime.post.nms import MAX_NMS, batched_nms, nms, non_max_suppression


def row(cx, cy, w, h, obj, *cls):
    return [cx, cy, w, h, obj, *cls]


def test_defaults_conf_iou_max_det():
    # conf 0.3 > 0.25 kept; a box of IoU 0.5 with a better one is suppressed at 0.45
    pred = np.array([[row(50, 50, 20, 20, 0.9, 1.0), row(55, 50, 20, 20, 0.8, 1.0), row(200, 200, 10, 10, 0.3, 1.0)]],
                    np.float32)
    (det,) = non_max_suppression(pred)
    np.testing.assert_allclose(det[:, 4], [0.9, 0.3], rtol=1e-6)
    # IoU of (40..60) and (45..65) is 15/25 = 0.6 > 0.45; at IoU 0.4 (cx 57.5 ... ) it stays
    pred[0, 1, 0] = 60.0  # overlap 10 of 30 = 1/3
    (det,) = non_max_suppression(pred)
    assert len(det) == 3
    # at most 300 by default: 301 far-apart boxes
    xy = np.stack(np.meshgrid(np.arange(21) * 30.0, np.arange(15) * 30.0), -1).reshape(-1, 2)[:301]
    many = np.concatenate((xy, np.full((301, 2), 10.0), np.linspace(0.9, 0.5, 301)[:, None], np.ones((301, 1))), 1)
    (det,) = non_max_suppression(many[None].astype(np.float32))
    assert len(det) == 300
    np.testing.assert_allclose(det[:, 4], np.linspace(0.9, 0.5, 301)[:300], rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 6), (1, 4, 5), (1, 1, 4, 6)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match=r"expected predictions \[B, N, 5\+nc\], got shape \("):
        non_max_suppression(np.zeros(shape, np.float32))


def test_thresholds_are_strict():
    """conf = obj*cls exactly at conf_thres is dropped (upstream's `>`), in the multi- and single-label paths."""
    pred = np.array([[row(50, 50, 20, 20, 0.5, 0.5, 0.25), row(150, 50, 20, 20, 0.75, 0.25, 1.0)]], np.float32)
    (multi,) = non_max_suppression(pred, conf_thres=0.25)
    np.testing.assert_array_equal(multi[:, 4:], [[0.75, 1.0]])
    (single,) = non_max_suppression(pred, conf_thres=0.25, multi_label=False)
    np.testing.assert_array_equal(single[:, 4:], [[0.75, 1.0]])
    (single,) = non_max_suppression(pred[:, :, :6], conf_thres=0.25)  # nc = 1: 0.25 (tie) and 0.1875
    assert single.shape == (0, 6)


def test_empty_results_are_float32_rows_of_six_for_every_image():
    pred = np.zeros((3, 4, 7), np.float32)
    pred[..., 2:4] = 10
    pred[1, 0] = row(50, 50, 20, 20, 0.9, 0.1, 0.1)  # passes obj, no class passes
    pred[2, 0] = row(50, 50, 20, 20, 0.9, 0.9, 0.1)
    out = non_max_suppression(pred, conf_thres=0.25)
    assert len(out) == 3
    for det in out[:2]:
        assert det.shape == (0, 6) and det.dtype == np.float32
    assert out[2].shape == (1, 6) and out[2].dtype == np.float32
    # filtered out by the class filter only: still an empty float32 row set, and the next image follows
    out = non_max_suppression(pred[[2, 2]] * np.float32(1), conf_thres=0.25, classes=[1])
    assert [d.shape for d in out] == [(0, 6), (0, 6)] and out[0].dtype == np.float32


def test_non_finite_rows_are_dropped_row_by_row():
    pred = np.array([[row(50, 50, 20, 20, 0.9, 1.0), row(np.nan, 50, 20, 20, 0.8, 1.0),
                      row(300, 50, 20, 20, 0.7, np.inf), row(500, 50, 20, 20, 0.6, 1.0)]], np.float32)
    (det,) = non_max_suppression(pred)
    np.testing.assert_allclose(det, [[40, 40, 60, 60, 0.9, 0], [490, 40, 510, 60, 0.6, 0]], rtol=1e-6)


def test_only_the_max_nms_best_enter_nms():
    """MAX_NMS + 2 candidates: 30000 copies of one box at 0.9 and two far boxes at 0.5, which are cut."""
    n = MAX_NMS + 2
    pred = np.tile(np.array(row(100, 100, 20, 20, 0.9, 1.0), np.float32), (1, n, 1))
    pred[0, 5, 4] = 0.95  # the one kept, not the first row
    pred[0, -2:, 0] = (1000, 2000)
    pred[0, -2:, 4] = 0.5
    (det,) = non_max_suppression(pred)
    np.testing.assert_allclose(det, [[90, 90, 110, 110, 0.95, 0]], rtol=1e-6)


def test_max_nms_cut_keeps_input_order_among_ties():
    """Ties at the MAX_NMS cut: the stable order keeps the earliest rows, as torch's topk-free upstream
    sort would; the last rows (far boxes) are cut."""
    n = MAX_NMS + 10
    conf = np.random.default_rng(0).choice(np.array([0.9, 0.8, 0.7], np.float32), n)
    conf[-10:] = 0.7
    pred = np.tile(np.array(row(100, 100, 20, 20, 0.9, 1.0), np.float32), (1, n, 1))
    pred[0, :, 4] = conf
    pred[0, -10:, 0] = 1000 + 100 * np.arange(10)
    (det,) = non_max_suppression(pred)
    np.testing.assert_allclose(det, [[90, 90, 110, 110, 0.9, 0]], rtol=1e-6)


def test_batched_nms_empty_is_int64():
    for f in (lambda: batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), 0.5),
              lambda: nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)):
        k = f()
        assert k.dtype == np.int64 and k.shape == (0,)


def test_batched_nms_class_offset_exceeds_a_span_over_4096():
    """Boxes spanning 5000 px: the class offset must exceed the span, or a class-1 box at the minimum corner
    lands on a class-0 box at the maximum corner (with an offset of span - 1: IoU 1/3.5)."""
    boxes = np.array([[4998.5, 4998.5, 5000.0, 5000.0], [0.0, 0.0, 1.5, 1.5]])
    k = batched_nms(boxes, np.array([0.9, 0.8]), np.array([0, 1]), 0.2)
    assert k.tolist() == [0, 1]


def test_batched_nms_class_offset_with_negative_coordinates():
    """Coordinates from -3000 to 3000: the span is 6000 (max - min), not max + min."""
    boxes = np.array([[1096.0, 1096.0, 2096.0, 2096.0], [-3000.0, -3000.0, -2000.0, -2000.0],
                      [2900.0, 2900.0, 3000.0, 3000.0]])
    k = batched_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0]), 0.5)
    assert k.tolist() == [0, 1, 2]


def test_nms_zero_area_boxes_without_warnings():
    """0/0 IoUs (empty boxes) count as no overlap, silently."""
    boxes = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        k = nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)
        kb = batched_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.5)
    assert k.tolist() == [0, 1, 2] and kb.tolist() == [0, 1, 2]


def py_iou(a, b) -> float:
    """In Python floats (float64), from the float32 corners."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


@pytest.mark.parametrize("pair, kept", [
    # IoU just under 0.45 in float64 (float32 arithmetic would put it over)
    ([[214.6771240234375, 342.91790771484375, 318.0192565917969, 525.264892578125],
      [253.8758544921875, 342.91790771484375, 357.2179870605469, 525.2649536132812]], [0, 1]),
    # just over 0.45 in float64 (float32 arithmetic would put it under)
    ([[53.361385345458984, 589.1655883789062, 229.06610107421875, 601.024169921875],
      [120.00800323486328, 589.1655883789062, 295.71270751953125, 601.024169921875]], [0]),
])
def test_nms_decides_float32_boxes_in_float64(pair, kept):
    boxes = np.array(pair, np.float32)
    assert (py_iou(*boxes) > 0.45) == (kept == [0])
    assert nms(boxes, np.array([0.9, 0.8], np.float32), 0.45).tolist() == kept
