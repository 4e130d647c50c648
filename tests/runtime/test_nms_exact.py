"""`non_max_suppression` edge cases with hand-computed answers (fast killer tests for runtime/nms.py);
the random comparisons against a plain reference are in test_runtime_nms.py."""
from __future__ import annotations

import numpy as np
import pytest

from yolor_deploy.runtime.nms import MAX_NMS, non_max_suppression


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
