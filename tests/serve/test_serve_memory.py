"""Uploads cannot take the server's memory: a real `serve` process sent small PNGs that decode to huge images,
many at once. Admission by decoded pixels (`serve.admission`) sizes each image from its header and refuses or
defers before decoding; the server's peak RSS (VmHWM) stays under a stated bound and it keeps answering.

Before: four 746 KB PNGs of 16000^2 in one request answered 200 with a 3.8 GB peak (3.1 GB still held)."""
from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import httpx
import pytest

from helpers.serve_server import Server, metric, metrics, trained_onnx
from yolor_deploy.assets import sample_image

SIDE = 12_000  # 144 M pixels: 432 MB decoded (BGR), a 420 KB PNG
PIXELS = SIDE * SIDE
MB = 1 << 20


@cache
def huge_png(side: int = SIDE) -> bytes:
    """A valid all-black RGB PNG of side x side, compressed row by row (never held decoded here)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z, row = zlib.compressobj(9), b"\0" * (1 + 3 * side)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def post_pngs(url: str, n: int) -> httpx.Response:
    files = [("image", (f"huge{i}.png", huge_png(), "image/png")) for i in range(n)]
    return httpx.post(f"{url}/v1/detect", files=files, timeout=120)


@pytest.fixture(scope="module")
def server():
    s = Server(trained_onnx(), "--max-pixels", str(PIXELS), "--max-pixels-in-flight", str(PIXELS),
               "--max-images", "4", "--max-body-mb", "4", "--max-batch", "4")
    yield s
    assert s.stop() == 0, s.stderr


def test_eight_concurrent_requests_of_four_huge_pngs_are_refused_before_decoding(server):
    """Each request's four images (4 x 144 M pixels) exceed the in-flight budget alone: 413 from the headers,
    nothing decoded: the peak RSS grows by less than one decoded image (bound: 100 MB; one image is 432 MB)."""
    base = peak_rss(server.proc.pid)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_pngs(server.url, 4), range(8)))
    assert [(r.status_code, r.json()["kind"]) for r in answers] == [(413, "too_many_pixels")] * 8, answers[0].text
    assert answers[0].json()["error"].startswith(f"image: {4 * PIXELS:,} decoded pixels in one request exceed the "
                                                 f"server's budget of {PIXELS:,} pixels in flight")
    grew = peak_rss(server.proc.pid) - base
    print(f"8 x 4 huge PNGs: peak RSS {base / MB:.0f} MB -> +{grew / MB:.0f} MB")
    assert grew < 100 * MB
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.post(f"{server.url}/v1/detect", files=[("image", ("s.jpg", sample_image().read_bytes()))],
                      timeout=60).status_code == 200


def test_concurrent_huge_images_are_decoded_one_at_a_time_the_rest_503(server):
    """Eight concurrent requests of one 144 M-pixel PNG each, with a budget of one such image: those that find
    the budget taken get 503 + Retry-After before decoding, so at most one is decoded at a time: the peak RSS
    grows by about one decoded image and its letterboxed copy, never eight (bound: 1.2 GB; eight would be 3.5 GB)."""
    base = peak_rss(server.proc.pid)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_pngs(server.url, 1), range(8)))
    statuses = sorted(r.status_code for r in answers)
    grew = peak_rss(server.proc.pid) - base
    print(f"8 x 1 huge PNG: statuses {statuses}; peak RSS {base / MB:.0f} MB -> +{grew / MB:.0f} MB")
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, [r.text for r in answers]
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.json()["kind"] == "pixels_busy" and busy.headers["retry-after"] == "1"
    assert grew < 1200 * MB
    m = metrics(server.url)
    assert metric(m, "yolor_serve_pixels_in_flight") == 0  # every admitted request gave its pixels back
    assert metric(m, "yolor_serve_errors_total", kind="pixels_busy") == statuses.count(503)
    assert httpx.get(f"{server.url}/health").status_code == 200
