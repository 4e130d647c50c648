"""Checks every `yolor-deploy serve` engine must pass the same way (local, Ray Serve): a request's detections
against a Detector's on the same image, and the table of refusals (400/413 with their kinds and one-line messages,
counted in /metrics, the server answering after each)."""
from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np

from helpers.serve_server import metric, metrics
from yolor_deploy.assets import sample_image, val_images


def images() -> list[Path]:
    return sorted(val_images().glob("*.jpg"))[:12] + [sample_image()]


def post(url: str, paths: list[Path] | Path, params: dict | None = None, timeout: float = 60) -> httpx.Response:
    paths = paths if isinstance(paths, list) else [paths]
    files = [("image", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]
    return httpx.post(f"{url}/v1/detect", files=files, params=params, timeout=timeout)


def assert_same(body: dict, expected, image_shape) -> None:
    """A response's detections against a Detector's (predict's) result on the same image."""
    assert (body["height"], body["width"]) == image_shape[:2] == expected.image_shape
    dets = body["detections"]
    assert [d["class_id"] for d in dets] == expected.classes.tolist()
    assert [d["class_name"] for d in dets] == expected.class_names
    if dets:
        np.testing.assert_allclose(np.array([d["box"] for d in dets], np.float32), expected.xyxy, atol=1e-3)
        np.testing.assert_allclose(np.array([d["score"] for d in dets], np.float32), expected.scores, atol=1e-5)


def png(h: int, w: int) -> bytes:
    return cv2.imencode(".png", np.zeros((h, w, 3), np.uint8))[1].tobytes()


def chunked_upload(total: int):
    """A multipart body streamed without Content-Length (chunked transfer encoding)."""
    boundary = "b0undary"
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
           f"Content-Type: image/png\r\n\r\n").encode()
    for _ in range(total // 65536):
        yield b"\0" * 65536
    yield f"\r\n--{boundary}--\r\n".encode()


def refusal_cases(max_body_bytes: int, max_pixels: int, max_images: int) -> list[tuple[dict, int, str, str]]:
    """(httpx.post keyword arguments, status, kind, error message start) for a server started with these limits
    (max_pixels below 1,000,000, max_body_bytes between 100 kB and 400 kB: the test images are 5-70 kB)."""
    assert max_pixels <= 1_000_000 and 100_000 < max_body_bytes < 400_000
    crafted = png(8, 8)[:16] + (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big") + png(8, 8)[24:]
    jpg = sample_image().read_bytes()
    return [
        (dict(files=[("image", ("a.txt", b"plain text, no image", "text/plain"))]), 400, "bad_image",
         "image: cannot decode image"),
        (dict(files=[("image", ("x.png", crafted, "image/png"))]), 413, "too_many_pixels",
         f"image: 30000x30000 pixels exceeds the limit of {max_pixels:,}"),
        (dict(files=[("image", ("y.png", png(1000, 1001), "image/png"))]), 413, "too_many_pixels",
         "image: 1001x1000 pixels exceeds"),
        (dict(files=[("image", ("s.jpg", jpg, "image/jpeg"))], params={"conf": "x"}), 400,
         "bad_request", "conf: 'x' is not a number"),
        (dict(files=[("image", ("s.jpg", jpg, "image/jpeg"))], params={"classes": "7"}),
         400, "bad_request", "classes: 7 is out of range"),
        (dict(files=[("image", ("s.jpg", jpg, "image/jpeg"))], params={"confidence": "1"}),
         400, "bad_request", "confidence: unknown query parameter"),
        (dict(files=[("picture", ("s.jpg", jpg, "image/jpeg"))]), 400, "bad_request", "image: Field required"),
        (dict(data={"picture": "x"}), 415, "unsupported_media_type",
         "content type application/x-www-form-urlencoded: /v1/detect takes multipart/form-data"),
        (dict(json={"image": "aGVsbG8="}), 415, "unsupported_media_type",
         "content type application/json: /v1/detect takes multipart/form-data"),
        (dict(files=[("image", ("s.jpg", jpg, "image/jpeg"))], data={"conf": "x"}), 400,
         "bad_request", "conf: 'x' is not a number"),  # a form field is read, not ignored
        (dict(files=[("image", ("s.jpg", jpg, "image/jpeg"))], data={"confidence": "0.9"}), 400,
         "bad_request", "confidence: unknown form field"),
        (dict(files=[("image", ("s.jpg", jpg, "image/jpeg"))], data={"conf": "x"}, params={"conf": "0.5"}), 400,
         "bad_request", "conf: 'x' is not a number"),  # the form field replaces the query's
        (dict(files=[("image", ("v.jpg", images()[0].read_bytes(), "image/jpeg"))] * (max_images + 1)), 413,
         "too_many_images", f"image: {max_images + 1} images in one request (at most {max_images}"),
        (dict(files=[("image", ("big.png", b"\0" * 400_000, "image/png"))]), 413, "body_too_large",
         f"request body exceeds the limit of {max_body_bytes:,} bytes"),
        (dict(content=chunked_upload(1 << 20), headers={"content-type": "multipart/form-data; boundary=b0undary"}),
         413, "body_too_large", f"request body exceeds the limit of {max_body_bytes:,} bytes"),
    ]


def check_refusals(url: str, max_body_bytes: int, max_pixels: int, max_images: int) -> None:
    """Every refusal case answers its status, kind and message; the server stays healthy after each and still
    detects; /metrics counts each kind and status exactly; an unknown path is a 404 counted as "other"."""
    before = metrics(url)
    cases = refusal_cases(max_body_bytes, max_pixels, max_images)
    for kwargs, status, kind, start in cases:
        r = httpx.post(f"{url}/v1/detect", timeout=30, **kwargs)
        assert (r.status_code, r.json()["kind"]) == (status, kind), r.text
        assert r.json()["error"].startswith(start), r.json()
        assert httpx.get(f"{url}/health").status_code == 200
    assert post(url, sample_image()).status_code == 200
    after = metrics(url)
    for kind in ("bad_image", "too_many_pixels", "bad_request", "too_many_images", "body_too_large",
                 "unsupported_media_type"):
        expected = sum(1 for c in cases if c[2] == kind)
        assert metric(after, "yolor_serve_errors_total", kind=kind) - metric(
            before, "yolor_serve_errors_total", kind=kind) == expected, kind
    for status in (400, 413, 415):
        expected = sum(1 for c in cases if c[1] == status)
        assert metric(after, "yolor_serve_requests_total", endpoint="/v1/detect", status=str(status)) - metric(
            before, "yolor_serve_requests_total", endpoint="/v1/detect", status=str(status)) == expected
    assert httpx.get(f"{url}/no/such/path").status_code == 404
    assert metric(metrics(url), "yolor_serve_requests_total", endpoint="other", status="404") >= 1
