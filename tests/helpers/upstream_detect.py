"""Upstream detect.py's results on the trained fixture (../shared/fixtures/trained), and the check that
a Detector reproduces them: the same classes in the same order, whole-pixel boxes, scores within 2e-5."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.fixtures import fixture_path

CKPT = fixture_path("trained/shapes-ssss-w025.pt")
IMAGES = fixture_path("trained/images")
UPSTREAM = fixture_path("trained/upstream-detect-320")  # no NAME.txt: no detections in NAME.jpg


def images() -> list[str]:
    return sorted(str(p) for p in IMAGES.glob("*.jpg"))


def upstream_rows(image: str) -> np.ndarray:
    """upstream-detect-320/NAME.txt: `cls cx cy w h conf` per detection, normalised, written by
    detect.py in reversed (increasing conf) order from boxes rounded to whole pixels."""
    path = UPSTREAM / f"{Path(image).stem}.txt"
    if not path.exists() or not path.read_text().strip():
        return np.zeros((0, 6))
    return np.loadtxt(path, ndmin=2)


def ours_as_upstream_rows(det) -> np.ndarray:
    h, w = det.image_shape
    xyxy = np.round(det.xyxy.astype(np.float32))  # detect.py: scale_coords(...).round()
    cxcywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1) / [w, h, w, h]
    rows = np.concatenate([det.classes[:, None], cxcywh, det.scores[:, None]], 1)[::-1]
    return np.array([[float(f"{v:g}") for v in r] for r in rows]).reshape(-1, 6)  # '%g' as written


def assert_reproduces_upstream(detector) -> int:
    n = 0
    for image, det in zip(images(), detector(images())):
        ref, ours = upstream_rows(image), ours_as_upstream_rows(det)
        assert ours.shape == ref.shape, image
        np.testing.assert_array_equal(ours[:, 0], ref[:, 0], err_msg=image)  # classes, in order
        np.testing.assert_allclose(ours[:, 1:5], ref[:, 1:5], atol=2e-6, err_msg=image)  # whole-pixel boxes
        np.testing.assert_allclose(ours[:, 5], ref[:, 5], atol=2e-5, err_msg=image)  # scores
        n += len(ref)
    return n
