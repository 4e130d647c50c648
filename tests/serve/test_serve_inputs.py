"""Request parameters and uploaded image bytes: checked, one line naming the field, decoded as `predict` reads."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from yolor_deploy.assets import sample_image
from yolor_deploy.runtime import read_image
from yolor_deploy.serve.inputs import DetectParams, RequestError, decode_image, decode_images, parse_params


def test_params_default_and_given():
    assert parse_params([], nc=3) == DetectParams()
    p = parse_params([("conf", "0.5"), ("iou", "0.6"), ("max_det", "7"), ("classes", "2,0"), ("classes", "2")], 3)
    assert p == DetectParams(0.5, 0.6, 7, (2, 0))
    assert parse_params([], 3, DetectParams(0.1, 0.2, 3)) == DetectParams(0.1, 0.2, 3)


@pytest.mark.parametrize("items, message", [
    ([("conf", "abc")], "conf: 'abc' is not a number (expected 0..1)"),
    ([("conf", "1.5")], "conf: 1.5 is out of range (expected 0..1)"),
    ([("iou", "nan")], "iou: nan is out of range (expected 0..1)"),
    ([("conf", "0.1"), ("conf", "0.2")], "conf: given 2 times (give it once)"),
    ([("max_det", "0")], "max_det: 0 is out of range (expected 1..10000)"),
    ([("max_det", "2.5")], "max_det: '2.5' is not an integer (expected 1..10000)"),
    ([("classes", "3")], "classes: 3 is out of range (the model has 3 classes, 0..2)"),
    ([("classes", "a")], "classes: 'a' is not a class index (expected integers 0..2, e.g. classes=0,2)"),
    ([("classes", ",")], "classes: empty (give class indices, e.g. classes=0,2, or leave it out)"),
    ([("cnf", "0.3")], "cnf: unknown query parameter (allowed: conf, iou, max_det, classes)"),
])
def test_bad_params_name_the_field(items, message):
    with pytest.raises(RequestError) as e:
        parse_params(items, nc=3)
    assert (e.value.status, e.value.message) == (400, message)


@pytest.mark.parametrize("suffix, flags", [(".jpg", cv2.IMREAD_UNCHANGED), (".png", cv2.IMREAD_GRAYSCALE),
                                           (".png", cv2.IMREAD_UNCHANGED)])
def test_decoded_bytes_equal_predicts_file_read(tmp_path, suffix, flags):
    img = cv2.imread(str(sample_image()), flags)
    if flags == cv2.IMREAD_UNCHANGED and suffix == ".png":  # with an alpha channel
        img = np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])
    path = tmp_path / f"im{suffix}"
    cv2.imwrite(str(path), img)
    decoded = decode_image(path.read_bytes(), "image", 1 << 28)
    assert decoded.shape == (480, 640, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, read_image(path))


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_pixel_cap_from_the_header_before_decoding_and_after():
    with pytest.raises(RequestError) as e:  # 57 bytes declaring 30000 x 30000: refused unread
        decode_image(_png_header(30000, 30000), "image", 1 << 28)
    assert e.value.status == 413 and e.value.kind == "too_many_pixels"
    assert e.value.message.startswith("image: 30000x30000 pixels exceeds the limit of 268,435,456 decoded pixels")
    ok, buf = cv2.imencode(".png", np.zeros((100, 200, 3), np.uint8))
    assert decode_image(buf.tobytes(), "image", 20_000).shape == (100, 200, 3)
    with pytest.raises(RequestError) as e:
        decode_images([buf.tobytes(), buf.tobytes()], 19_999)
    assert (e.value.status, e.value.message.split(":")[0]) == (413, "image[0]")


@pytest.mark.parametrize("data, message", [(b"", "image: empty upload"),
                                           (b"not an image" * 10, "image: cannot decode image (corrupt or not an "
                                                                  "image)")])
def test_undecodable_bytes_are_a_400(data, message):
    with pytest.raises(RequestError) as e:
        decode_image(data, "image", 1 << 28)
    assert (e.value.status, e.value.kind, e.value.message) == (400, "bad_image", message)
