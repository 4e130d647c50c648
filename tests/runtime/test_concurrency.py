"""One Detector called from many threads gives every caller its own result, on every backend."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from helpers.runtime_data import horses
from helpers.runtime_models import model_path, tiny_module
from yolor_deploy.runtime import Detector

THREADS, IMAGES = 8, 48


def _images() -> list[np.ndarray]:
    """Different images (crops and flips of horses.jpg) so that a swapped result cannot go unnoticed."""
    h = horses()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(IMAGES):
        y, x = rng.integers(0, h.shape[0] // 3), rng.integers(0, h.shape[1] // 3)
        crop = h[y:y + h.shape[0] // 2 + 40, x:x + h.shape[1] // 2 + 60]
        out.append(np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop))
    return out


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino", "torch"])
def test_threads_get_their_own_results(kind):
    if kind == "torch":
        det = Detector(_torch_backend(), imgsz=320)
    else:
        det = Detector(model_path("dynamic"), imgsz=320, backend=kind)
    images = _images()
    sequential = [det(im)[0] for im in images]
    assert sum(len(r) for r in sequential) > 0
    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(2):
            concurrent = list(pool.map(lambda im: det(im)[0], images))
            for a, b in zip(sequential, concurrent):
                assert a.image_shape == b.image_shape
                np.testing.assert_array_equal(a.classes, b.classes)
                np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
                np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def _torch_backend():
    from yolor_deploy.runtime.torch_backend import TorchBackend

    return TorchBackend(tiny_module())
