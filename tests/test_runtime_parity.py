"""The trained fixture (a real upstream paper-branch checkpoint, ../shared/fixtures/trained) through
`predict`'s path: it reproduces upstream detect.py at 320, and its ONNX exports agree with it."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from _runtime_data import assert_same_detections, write_sizes_folder
from conftest import fixture_path
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.export import export_onnx
from yolor_deploy.runtime import Detector

CKPT = fixture_path("trained/shapes-ssss-w025.pt")
IMAGES = fixture_path("trained/images")
UPSTREAM = fixture_path("trained/upstream-detect-320")  # no NAME.txt: no detections in NAME.jpg


def _images() -> list[str]:
    return sorted(str(p) for p in IMAGES.glob("*.jpg"))


def _upstream_rows(image: str) -> np.ndarray:
    """upstream-detect-320/NAME.txt: `cls cx cy w h conf` per detection, normalised, written by
    detect.py in reversed (increasing conf) order from boxes rounded to whole pixels."""
    path = UPSTREAM / f"{Path(image).stem}.txt"
    if not path.exists() or not path.read_text().strip():
        return np.zeros((0, 6))
    return np.loadtxt(path, ndmin=2)


def _ours_as_upstream_rows(det) -> np.ndarray:
    h, w = det.image_shape
    xyxy = np.round(det.xyxy.astype(np.float32))  # detect.py: scale_coords(...).round()
    cxcywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1) / [w, h, w, h]
    rows = np.concatenate([det.classes[:, None], cxcywh, det.scores[:, None]], 1)[::-1]
    return np.array([[float(f"{v:g}") for v in r] for r in rows]).reshape(-1, 6)  # '%g' as written


def _assert_reproduces_upstream(detector: Detector) -> int:
    n = 0
    for image, det in zip(_images(), detector(_images())):
        ref, ours = _upstream_rows(image), _ours_as_upstream_rows(det)
        assert ours.shape == ref.shape, image
        np.testing.assert_array_equal(ours[:, 0], ref[:, 0], err_msg=image)  # classes, in order
        np.testing.assert_allclose(ours[:, 1:5], ref[:, 1:5], atol=2e-6, err_msg=image)  # whole-pixel boxes
        np.testing.assert_allclose(ours[:, 5], ref[:, 5], atol=2e-5, err_msg=image)  # scores
        n += len(ref)
    return n


@pytest.fixture(scope="module")
def pt_detector() -> Detector:
    return Detector(CKPT, imgsz=320)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exports")
    model = load_checkpoint(CKPT)  # loaded once; export works on a copy
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kw in {"dynamic": {"dynamic": True}, "static": {}, "nms": {"nms": "onnx"}}.items():
            out[name] = folder / f"shapes-{name}.onnx"
            export_onnx(model, out[name], imgsz=(320, 320), verify=False, simplify=False, **kw)
    return out


def test_checkpoint_reproduces_upstream_detect_320(pt_detector):
    assert pt_detector.names == ("circle", "square", "triangle") and pt_detector.imgsz == (320, 320)
    assert _assert_reproduces_upstream(pt_detector) == 155


@pytest.mark.parametrize("kind", ["static", "nms"])
def test_onnx_export_reproduces_upstream_detect_320(exports, kind):
    det = Detector(exports[kind], imgsz=320)
    assert det.metadata.nms.mode == ("onnx" if kind == "nms" else "none")
    assert _assert_reproduces_upstream(det) == 155


def test_checkpoint_and_dynamic_onnx_agree_on_every_kind_of_image(pt_detector, exports, tmp_path):
    sources = _images() + [str(p) for p in write_sizes_folder(tmp_path).values()]
    onnx_det = Detector(exports["dynamic"], imgsz=320)
    n = 0
    for a, b in zip(pt_detector(sources), onnx_det(sources)):
        assert_same_detections(a, b, iou_min=0.99, score_tol=1e-4)
        n += len(a)
    assert n > 155
