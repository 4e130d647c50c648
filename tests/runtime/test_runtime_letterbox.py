"""Letterbox and box mapping against hand-computed numbers and upstream's own preprocessed input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers.fixtures import fixture_path
from yolor_deploy.runtime import letterbox, scale_boxes
from yolor_deploy.runtime.inputs.letterbox import letterbox_shape


def _horses() -> np.ndarray:
    return cv2.imread(str(fixture_path("horses.jpg")))


def test_horses_320_static_numbers():
    img = _horses()
    assert img.shape[:2] == (512, 773)
    out = letterbox(img, 320, auto=False)
    assert out.ratio[0] == pytest.approx(0.41397, abs=1e-5)
    assert out.image.shape == (320, 320, 3)
    assert out.pad == (0.0, 54.0)
    # 212 rows of picture between 54 grey rows above and below
    assert (out.image[:54] == 114).all() and (out.image[-54:] == 114).all()
    assert not (out.image[54:266] == 114).all()


def test_horses_preprocessing_is_bit_exact_with_upstream():
    """horses-320.npy was made by upstream letterbox + BGR->RGB + /255: the Detector's tensor equals it."""
    ref_path = fixture_path("horses-320.npy")
    from yolor_deploy.runtime.detector import Detector

    class Fake:  # a static 1x3x320x320 backend; only preprocessing runs
        path, name, load_seconds = "fake", "fake", 0.0
        input_shape, input_dtype, output_names = (1, 3, 320, 320), np.dtype(np.float32), ["output"]
        from yolor_deploy.runtime.backends.metadata import ModelMetadata
        metadata = ModelMetadata(names=("a",), stride=(8, 16, 32), imgsz=(320, 320))

    det = Detector(Fake())
    (batch,) = det.preprocess([_horses()])
    np.testing.assert_array_equal(batch.tensor, np.load(ref_path))


def test_horses_auto_pads_to_multiple_of_64():
    out = letterbox(_horses(), 320, auto=True, stride=64)
    assert out.image.shape == (256, 320, 3)  # 108 px of padding -> 108 % 64 = 44 -> 22 + 22
    assert out.pad == (0.0, 22.0)


@pytest.mark.parametrize(
    "shape, new, auto, expect_shape, expect_tblr",
    [
        ((480, 640), 640, False, (640, 640), (80, 80, 0, 0)),
        ((480, 640), 640, True, (512, 640), (16, 16, 0, 0)),  # 160 % 64 = 32
        ((100, 33), 320, False, (320, 320), (0, 0, 107, 107)),  # 33*3.2 = 105.6 -> 106, 214/2 each side
        ((101, 100), 320, False, (320, 320), (0, 0, 1, 2)),  # 100*3.168 = 316.8 -> 317: odd 3 -> 1 left, 2 right
        ((2, 3), 320, True, (256, 320), (21, 22, 0, 0)),  # tiny: r=106.7 -> 213x320, 107 % 64 = 43: 21 + 22
    ],
)
def test_letterbox_geometry(shape, new, auto, expect_shape, expect_tblr):
    img = np.full((*shape, 3), 7, np.uint8)
    out = letterbox(img, new, auto=auto, stride=64)
    assert out.image.shape[:2] == expect_shape
    rows = np.flatnonzero((out.image[:, :, 0] != 114).any(1))
    cols = np.flatnonzero((out.image[:, :, 0] != 114).any(0))
    top, bottom = rows[0], out.image.shape[0] - 1 - rows[-1]
    left, right = cols[0], out.image.shape[1] - 1 - cols[-1]
    # upstream: top = round(d - 0.1), bottom = round(d + 0.1) with Python rounding
    _, _, (dw, dh) = letterbox_shape(shape, new, auto, 64)
    assert (top, bottom, left, right) == (round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1))
    assert (top, bottom, left, right) == expect_tblr


def test_letterbox_extreme_aspect_keeps_one_pixel():
    out = letterbox(np.zeros((1, 2000, 3), np.uint8), 320, auto=False)
    assert out.image.shape == (320, 320, 3)


def test_scale_boxes_inverts_letterbox():
    img = _horses()
    out = letterbox(img, 320, auto=False)
    r, (dw, dh) = out.ratio[0], out.pad
    orig = np.array([[10.0, 20.0, 400.0, 500.0], [0.0, 0.0, 773.0, 512.0]], np.float32)
    boxed = orig * r + np.array([dw, dh, dw, dh], np.float32)
    back = scale_boxes(boxed, out.image.shape[:2], img.shape[:2])
    # upstream recomputes the pad from the shapes (54.02 here, 54 drawn): 0.06 px off, as detect.py
    np.testing.assert_allclose(back, orig, atol=0.1)
    # clipping: a box beyond the image is cut at its border
    wild = scale_boxes(np.array([[-50, -50, 400, 400]], np.float32), (320, 320), img.shape[:2])
    assert wild.min() == 0 and wild[0, 2] <= 773 and wild[0, 3] <= 512
