"""Letterbox geometry and pixels against hand-computed numbers (fast killer tests for runtime/inputs/letterbox.py)."""
from __future__ import annotations

import numpy as np
import pytest

from yolor_deploy.runtime.inputs.letterbox import PAD_VALUE, letterbox, letterbox_shape


@pytest.mark.parametrize(
    "shape, kwargs, want",
    [
        # defaults: 640, auto, stride 64 -> r 1, 160 px of height padding, 160 % 64 = 32 -> 16 per side
        ((480, 640), {}, (1.0, (640, 480), (0.0, 16.0))),
        # (H, W) new shape where the height ratio is the smaller: r = 320/300, 100*r = 106.67 -> 107
        ((300, 100), {"new_shape": (320, 480), "auto": False}, (320 / 300, (107, 320), (186.5, 0.0))),
        # ... and where the width ratio is: r = 480/300 = 1.6, 100*1.6 = 160 of 320 high
        ((100, 300), {"new_shape": (320, 480), "auto": False}, (1.6, (480, 160), (0.0, 80.0))),
        # auto keeps the width padding mod stride: 140 % 64 = 12 -> 6 per side (not 140/64)
        ((640, 500), {"new_shape": 640}, (1.0, (500, 640), (6.0, 0.0))),
        # stride 32: 224 px of height padding, 224 % 32 = 0 (224 % 64 = 32)
        ((325, 500), {"new_shape": 640, "stride": 32}, (1.28, (640, 416), (0.0, 0.0))),
        # no upscaling: r stays 1 (and would be 3.2)
        ((100, 200), {"new_shape": 640, "scaleup": False, "auto": False}, (1.0, (200, 100), (220.0, 270.0))),
        # no upscaling does not stop a downscale
        ((1280, 640), {"new_shape": 640, "scaleup": False, "auto": False}, (0.5, (320, 640), (160.0, 0.0))),
        # extreme aspect ratios: the short side rounds to 0 and is kept at 1 px, either axis
        ((1, 10000), {"new_shape": 640, "auto": False}, (0.064, (640, 1), (0.0, 319.5))),
        ((10000, 1), {"new_shape": 640, "auto": False}, (0.064, (1, 640), (319.5, 0.0))),
    ],
)
def test_letterbox_shape_exact(shape, kwargs, want):
    r, unpad, pad = letterbox_shape(shape, **kwargs)
    assert r == pytest.approx(want[0], rel=1e-12)
    assert unpad == want[1]
    assert pad == want[2]


def test_letterbox_defaults_and_grey_pad():
    out = letterbox(np.full((480, 640, 3), 7, np.uint8))
    assert out.image.shape == (512, 640, 3)
    assert out.ratio == (1.0, 1.0) and out.pad == (0.0, 16.0)
    assert PAD_VALUE == 114
    assert (out.image[:16] == 114).all() and (out.image[-16:] == 114).all() and (out.image[16:-16] == 7).all()


@pytest.mark.parametrize(
    "shape, new, tblr",
    [
        ((319, 320), 320, (0, 1, 0, 0)),  # only the bottom pad is 1 px (dh = 0.5)
        ((320, 319), 320, (0, 0, 0, 1)),  # only the right pad
        ((318, 320), 320, (1, 1, 0, 0)),
        ((320, 317), 320, (0, 0, 1, 2)),
        ((320, 320), 320, (0, 0, 0, 0)),
    ],
)
def test_letterbox_odd_padding_goes_bottom_right(shape, new, tblr):
    img = np.full((*shape, 3), 7, np.uint8)
    out = letterbox(img, new, auto=False)
    assert out.image.shape == (new, new, 3)
    top, bottom, left, right = tblr
    inner = out.image[top:new - bottom, left:new - right]
    assert inner.shape[:2] == shape and (inner == 7).all()
    assert (out.image == 114).sum() == (new * new - shape[0] * shape[1]) * 3


def test_letterbox_colour_int_and_tuple():
    img = np.full((10, 20, 3), 7, np.uint8)
    out = letterbox(img, (20, 20), color=50, auto=False)
    assert out.image[0, 0].tolist() == [50, 50, 50] and out.image[5:15].min() == 7
    out = letterbox(img, (20, 20), color=(1, 2, 3), auto=False)
    assert out.image[0, 0].tolist() == [1, 2, 3] and out.image[-1, -1].tolist() == [1, 2, 3]


def test_letterbox_does_not_upscale_when_told():
    img = np.full((50, 100, 3), 7, np.uint8)
    out = letterbox(img, 200, auto=False, scaleup=False)
    assert out.ratio == (1.0, 1.0) and out.pad == (50.0, 75.0)
    assert (out.image[75:125, 50:150] == 7).all() and (out.image == 114).sum() == (200 * 200 - 50 * 100) * 3


def bilinear_half_pixel(img: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres and edge clamping (what INTER_LINEAR means), float64."""
    h, w = img.shape[:2]
    ys = np.clip((np.arange(new_h) + 0.5) * h / new_h - 0.5, 0, h - 1)
    xs = np.clip((np.arange(new_w) + 0.5) * w / new_w - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    f = img.astype(np.float64)
    top = f[y0][:, x0] * (1 - fx) + f[y0][:, x1] * fx
    bot = f[y1][:, x0] * (1 - fx) + f[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


def test_letterbox_resizes_bilinearly():
    """A steep gradient upscaled 4x4 -> 10x10: bilinear within 1 grey level (OpenCV's fixed point);
    nearest neighbour would be up to ~25 levels off."""
    g = (np.arange(4)[None, :] * 60 + np.arange(4)[:, None] * 20).astype(np.uint8)
    img = np.stack([g, g[::-1], g.T], -1)
    out = letterbox(img, 10, auto=False)
    assert out.image.shape == (10, 10, 3) and out.pad == (0.0, 0.0)
    want = bilinear_half_pixel(img, 10, 10)
    assert np.abs(out.image.astype(np.float64) - want).max() <= 1.0


@pytest.mark.parametrize(
    "shape, new, unpad",
    [
        ((1, 4), (2, 3), (3, 1)),  # resized to 3 wide: its new width equals the channel count
        ((2, 1), 1, (1, 1)),  # resized to 1x1 although one side keeps its size
    ],
)
def test_letterbox_resizes_whenever_the_size_changes(shape, new, unpad):
    img = np.full((*shape, 3), 7, np.uint8)
    out = letterbox(img, new, auto=False)
    assert out.image.shape[:2] == ((new, new) if isinstance(new, int) else new)
    assert (out.image == 7).all(-1).sum() == unpad[0] * unpad[1]
