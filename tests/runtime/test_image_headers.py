"""Every image format's size is read from its header before decoding (issue 20): real OpenCV encodings are
sized exactly, hand-made bombs (a JPEG frame header after 100 KB of APP segments, a sparse 17000² TIFF, a
16000² PNG) are refused before a pixel is decoded (peak memory measured in a subprocess), and what cannot be
sized (looping, truncated, unknown) is refused in one line."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import image_bombs
from yolor_deploy.errors import InputError, PixelLimitError
from yolor_deploy.runtime.inputs.image_header import MAX_SEGMENTS, check_image, image_size
from yolor_deploy.runtime.inputs.sources import decode_image

IMAGE = (np.random.default_rng(0).random((37, 53, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("ext,params", [
    (".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".bmp", []),
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101]), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 50]), (".tiff", []),
    (".jp2", []), (".ppm", []), (".pgm", []), (".pbm", []), (".pnm", [cv2.IMWRITE_PXM_BINARY, 0]), (".pam", []),
    (".pfm", []), (".hdr", []), (".sr", []), (".gif", []),
])
def test_every_opencv_format_is_sized_from_its_header(ext, params):
    img = IMAGE.astype(np.float32) / 255 if ext in (".pfm", ".hdr") else IMAGE[:, :, 0] if ext in (".pgm", ".pbm") else IMAGE
    ok, buf = cv2.imencode(ext, img, params)
    assert ok
    assert image_size(buf.tobytes()) == (53, 37)
    assert decode_image(buf, f"x{ext}").shape == (37, 53, 3)
    with pytest.raises(PixelLimitError, match=rf"x{ext}: 53x37 pixels exceeds the limit of 1,000 decoded pixels"):
        decode_image(buf, f"x{ext}", limit=1000)


@pytest.mark.parametrize("kw", [{}, {"order": ">"}, {"big": True}, {"big": True, "order": ">"}, {"pages": 3}])
def test_tiff_byte_orders_bigtiff_and_page_chains(kw):
    data = image_bombs.tiff(37, 29, **kw)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape == (29, 37)  # a real TIFF
    assert image_size(data) == (37, 29)


def test_tiff_largest_page_counts_and_loops_are_refused():
    small, big = image_bombs.tiff(8, 8, pages=2), image_bombs.tiff(9000, 9000)
    at = struct.unpack("<I", small[4:8])[0]  # first directory; its next pointer -> a big page appended
    n = struct.unpack("<H", small[at:at + 2])[0]
    second = struct.unpack("<I", small[at + 2 + 12 * n:at + 6 + 12 * n])[0]
    patched = bytearray(small)
    patched[second + 2 + 8:second + 2 + 12] = struct.pack("<I", 9000)  # page 2 width
    patched[second + 2 + 12 + 8:second + 2 + 12 + 12] = struct.pack("<I", 9000)  # page 2 height
    assert image_size(bytes(patched)) == (9000, 9000) and image_size(big) == (9000, 9000)
    with pytest.raises(InputError, match=r"^l.tif: cannot decode image \(TIFF: cannot read the image size from the "
                                         r"header: format refused\)$"):
        check_image(image_bombs.tiff(8, 8, pages=3, loop=True), "l.tif")


def _jpeg_segments(markers: bytes) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    return buf.tobytes()[:2] + markers + buf.tobytes()[2:]


@pytest.mark.parametrize("name,data", [
    ("zero length", _jpeg_segments(b"\xff\xe1\x00\x00")),
    ("scan before frame", _jpeg_segments(b"\xff\xda\x00\x08" + bytes(6))),
    ("too many markers", _jpeg_segments(b"\xff\xfe\x00\x02" * (MAX_SEGMENTS + 1))),
    ("truncated in an APP segment", image_bombs.jpeg(8, 8, 100_000)[:50_000]),
    ("no frame", b"\xff\xd8\xff\xd9"),
    ("height from a DNL marker", image_bombs.jpeg(8, 0)),
])
def test_jpeg_headers_that_cannot_be_sized_are_refused(name, data):
    assert image_size(data) is None
    with pytest.raises(InputError, match=r"^j.jpg: cannot decode image \(JPEG: cannot read the image size"):
        decode_image(data, "j.jpg")


def test_jpeg_frame_header_after_app_segments_of_any_size():
    data = image_bombs.jpeg(8, 8, 300_000)
    assert image_size(data) == (8, 8) and decode_image(data, "a.jpg").shape == (8, 8, 3)
    with pytest.raises(PixelLimitError, match="a.jpg: 12000x12000 pixels exceeds the limit"):
        decode_image(image_bombs.jpeg(12000, 12000, 100_000), "a.jpg", limit=10**6)


def test_bmp_negative_height_and_jp2_codestream_larger_than_its_ihdr():
    ok, buf = cv2.imencode(".bmp", IMAGE)
    top_down = bytearray(buf.tobytes())
    top_down[22:26] = struct.pack("<i", -37)
    assert image_size(bytes(top_down)) == (53, 37) and decode_image(bytes(top_down), "t.bmp").shape == (37, 53, 3)
    ok, buf = cv2.imencode(".jp2", IMAGE)
    lying = bytearray(buf.tobytes())
    siz = lying.index(b"\xff\x4f\xff\x51")
    lying[siz + 8:siz + 16] = struct.pack(">II", 40000, 40000)  # the codestream, not the ihdr box, is decoded
    assert image_size(bytes(lying)) == (40000, 40000)


def test_unknown_and_unsized_formats_are_refused_in_one_line():
    with pytest.raises(InputError, match=r"^u.bin: cannot decode image \(corrupt or not an image\)$"):
        check_image(b"not an image" * 10, "u.bin")
    ok, buf = cv2.imencode(".avif", IMAGE)
    with pytest.raises(InputError, match=r"^a.avif: cannot decode image \(AVIF/HEIF: cannot read the image size "
                                         r"from the header: format refused\)$"):
        decode_image(buf, "a.avif")


_PEAK = r"""
import json, re, sys
from yolor_deploy.errors import InputError
from yolor_deploy.runtime.inputs.sources import read_image
out = {}
for path in sys.argv[1:]:
    try:
        read_image(path)
        out[path] = "decoded"
    except InputError as e:
        out[path] = str(e)
status = open("/proc/self/status").read()  # VmHWM: this process's peak (ru_maxrss keeps the forking parent's)
out["peak_mb"] = int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) / 1024
print(json.dumps(out))
"""


def test_bombs_are_refused_before_decoding_with_low_peak_memory(tmp_path):
    """OpenCV's own cap is lifted in the child (as when the program loaded OpenCV first): only our header
    check stands between these ~100-250 KB files and 0.4-0.9 GB of decoded pixels each."""
    files = {"app.jpg": image_bombs.jpeg(12000, 12000, 100_000), "sparse.tiff": image_bombs.tiff(17000, 17000),
             "big.png": image_bombs.png(16000, 16000)}
    paths = []
    for name, data in files.items():
        assert len(data) < 300_000
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src, "YOLOR_MAX_IMAGE_PIXELS": "1000000",
           "OPENCV_IO_MAX_IMAGE_PIXELS": str(1 << 31)}
    proc = subprocess.run([sys.executable, "-c", _PEAK, *paths], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    for path, (w, h) in zip(paths, [(12000, 12000), (17000, 17000), (16000, 16000)], strict=True):
        assert got[path].startswith(f"{path}: {w}x{h} pixels exceeds the limit of 1,000,000"), got
    assert got["peak_mb"] < 400, got
