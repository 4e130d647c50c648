"""Box helpers against hand-computed arrays (fast killer tests for runtime/post/boxes.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from yolor_deploy.runtime.post.boxes import box_area, box_convert, box_iou, clip_boxes, scale_boxes

XYXY = np.array([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 3.0, 1.0]])
CXCYWH = np.array([[30.0, 50.0, 40.0, 60.0], [1.5, 0.5, 3.0, 1.0]])
XYWH = np.array([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 3.0, 1.0]])


@pytest.mark.parametrize("src", ["xyxy", "cxcywh", "xywh"])
@pytest.mark.parametrize("dst", ["xyxy", "cxcywh", "xywh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [False, True])
def test_box_convert_exact(src, dst, dtype, batched):
    table = {"xyxy": XYXY, "cxcywh": CXCYWH, "xywh": XYWH}
    if batched:  # ndarray[B, N, 4]: the last axis, not axis 1
        table = {k: np.stack((v, v[::-1])) for k, v in table.items()}
    inp = table[src].astype(dtype)
    before = inp.copy()
    out = box_convert(inp, src, dst)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, table[dst].astype(dtype))
    np.testing.assert_array_equal(inp, before)
    assert not np.shares_memory(out, inp)


def test_box_convert_batched_and_bad_format():
    out = box_convert(CXCYWH[None].repeat(2, 0), "cxcywh", "xyxy")
    np.testing.assert_array_equal(out, XYXY[None].repeat(2, 0))
    with pytest.raises(ValueError, match=r"box formats must be one of \('xyxy', 'cxcywh', 'xywh'\), got 'xyxy' -> 'xy'"):
        box_convert(XYXY, "xyxy", "xy")
    with pytest.raises(ValueError, match="got 'cxcy' -> 'xyxy'"):
        box_convert(XYXY, "cxcy", "xyxy")


def test_box_area_and_iou_exact():
    a = np.array([[0.0, 0.0, 4.0, 2.0], [1.0, 1.0, 2.0, 5.0]])
    b = np.array([[2.0, 0.0, 6.0, 2.0], [10.0, 10.0, 11.0, 11.0], [0.0, 0.0, 4.0, 2.0]])
    np.testing.assert_array_equal(box_area(a), [8.0, 4.0])
    # a0 & b0: 2x2 = 4 of 8+8-4 = 12; a1 & b0: 0; a1 & b2: 1x1 = 1 of 4+8-1 = 11
    want = np.array([[4 / 12, 0.0, 1.0], [0.0, 0.0, 1 / 11]])
    np.testing.assert_allclose(box_iou(a, b), want, rtol=1e-15)
    assert box_iou(a, b).shape == (2, 3)


def test_box_iou_small_union_and_degenerate_boxes_without_warnings():
    """A union below 1 is still a union; a zero union (empty boxes) gives 0, silently, not NaN."""
    tiny = np.array([[0.0, 0.0, 0.5, 0.5], [0.25, 0.0, 0.75, 0.5]])
    empty = np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(box_iou(tiny, tiny), [[1.0, 1 / 3], [1 / 3, 1.0]], rtol=1e-15)
        z = box_iou(empty, empty)
    np.testing.assert_array_equal(z, np.zeros((2, 2)))


def test_box_iou_dtype_follows_inputs():
    a32, b64 = XYXY.astype(np.float32), XYXY.astype(np.float64)
    assert box_iou(a32, a32).dtype == np.float32
    assert box_iou(a32, b64).dtype == np.float64
    assert box_iou(b64, a32).dtype == np.float64


def test_clip_boxes_exact_and_input_untouched():
    boxes = np.array([[-5.0, -1.0, 50.0, 30.0], [3.0, 4.0, 5.0, 6.0]], np.float32)
    before = boxes.copy()
    out = clip_boxes(boxes, (20, 40))  # h 20, w 40
    np.testing.assert_array_equal(out, [[0.0, 0.0, 40.0, 20.0], [3.0, 4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(boxes, before)
    # an image's own .shape (h, w, C) works too
    np.testing.assert_array_equal(clip_boxes(boxes, (20, 40, 3)), out)


# letterboxed (256, 320) from a (600, 400) image: gain 256/600 = 32/75, x pad (320 - 400*32/75)/2 = 224/3
LB = np.array([[100.0, 50.0, 150.0, 200.0], [80.0, 10.0, 300.0, 250.0]])
BACK = np.array([[59.375, 117.1875, 176.5625, 468.75], [12.5, 23.4375, 528.125, 585.9375]])


def test_scale_boxes_recomputes_gain_and_pad_exact():
    before = LB.copy()
    out = scale_boxes(LB, (256, 320), (600, 400), clip=False)
    np.testing.assert_allclose(out, BACK, rtol=1e-12)
    np.testing.assert_array_equal(LB, before)
    clipped = scale_boxes(LB, (256, 320), (600, 400))
    np.testing.assert_allclose(clipped, np.minimum(BACK, [400, 600, 400, 600]), rtol=1e-12)
    # the width ratio the smaller one: (256, 320) from (300, 800): gain 0.4, y pad (256 - 120)/2 = 68
    out = scale_boxes(np.array([[4.0, 72.0, 40.0, 108.0]]), (256, 320), (300, 800), clip=False)
    np.testing.assert_allclose(out, [[10.0, 10.0, 100.0, 100.0]], rtol=1e-12)


def test_scale_boxes_with_ratio_pad_exact():
    boxes = np.array([[13.0, 17.0, 23.0, 27.0]], np.float32)
    out = scale_boxes(boxes, (320, 320), (100, 100), ratio_pad=((0.5, 0.25), (3.0, 7.0)))
    np.testing.assert_array_equal(out, [[20.0, 20.0, 40.0, 40.0]])
    assert out.dtype == np.float32
