"""One Detector called from many threads gives every caller exactly the result a sequential call gives, on every
backend, on the real trained YOLOR (the bundled shapes model: its .pt and its dynamic ONNX export).

Identical means bit-identical: each call runs the same kernels on the same input shape, whatever other threads
do, so boxes, scores and classes must match to the last bit (a race that mixes two callers' buffers, or a
result written into a shared array, shows up as a difference here)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers.trained_onnx import trained_onnx
from yolor_deploy.assets import trained_checkpoint, val_images
from yolor_deploy.runtime import Detector, read_image

THREADS, IMAGES = 8, 40


def _images() -> list[np.ndarray]:
    """Different images (the 20 labelled shapes images, each also cropped and flipped, so sizes differ) so that
    a swapped result cannot go unnoticed."""
    rng = np.random.default_rng(0)
    out = []
    for p in sorted(val_images().glob("*.jpg"))[:IMAGES // 2]:
        im = read_image(p)
        out.append(im)
        y, x = rng.integers(0, im.shape[0] // 4), rng.integers(0, im.shape[1] // 4)
        out.append(np.ascontiguousarray(im[y:y + im.shape[0] * 3 // 4, x:][:, ::-1]))
    return out


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino", "torch"])
def test_threads_get_their_own_results(kind):
    model = trained_checkpoint() if kind == "torch" else trained_onnx()
    det = Detector(model, imgsz=256, backend=kind)
    images = _images()
    sequential = [det(im)[0] for im in images]
    assert sum(len(r) for r in sequential) >= len(images)  # the real model finds shapes in every image
    assert len({r.image_shape for r in sequential}) > 1
    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(2):
            concurrent = list(pool.map(lambda im: det(im)[0], images))
            for a, b in zip(sequential, concurrent):
                assert a.image_shape == b.image_shape
                np.testing.assert_array_equal(a.classes, b.classes)
                np.testing.assert_array_equal(a.xyxy, b.xyxy)
                np.testing.assert_array_equal(a.scores, b.scores)
