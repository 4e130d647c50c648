"""The trained fixture (a real upstream paper-branch checkpoint, ../shared/fixtures/trained) through
`predict`'s path: it reproduces upstream detect.py at 320, and its ONNX exports agree with it."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from helpers.runtime_data import assert_same_detections, write_sizes_folder
from helpers.upstream_detect import CKPT, assert_reproduces_upstream, images
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.export import export_onnx
from yolor_deploy.runtime import Detector


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
    assert assert_reproduces_upstream(pt_detector) == 155


@pytest.mark.parametrize("kind", ["static", "nms"])
def test_onnx_export_reproduces_upstream_detect_320(exports, kind):
    det = Detector(exports[kind], imgsz=320)
    assert det.metadata.nms.mode == ("onnx" if kind == "nms" else "none")
    assert assert_reproduces_upstream(det) == 155


def test_checkpoint_and_dynamic_onnx_agree_on_every_kind_of_image(pt_detector, exports, tmp_path):
    sources = images() + [str(p) for p in write_sizes_folder(tmp_path).values()]
    onnx_det = Detector(exports["dynamic"], imgsz=320)
    n = 0
    for a, b in zip(pt_detector(sources), onnx_det(sources)):
        assert_same_detections(a, b, iou_min=0.99, score_tol=1e-4)
        n += len(a)
    assert n > 155
