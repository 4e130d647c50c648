"""Detector end to end on small ONNX models: sizing, batching, graph NMS, metadata, the PyTorch
backend through the same path, and the promise that the runtime never imports torch."""
from __future__ import annotations

import json
import textwrap
import warnings

import numpy as np
import pytest

from helpers.no_torch import run_without_torch
from helpers.runtime_data import assert_same_detections, horses, write_sizes_folder
from helpers.runtime_models import NMS_BOXES, model_path, set_metadata, tiny_module
from yolor_deploy.errors import InputError
from yolor_deploy.runtime import Detector, MetadataWarning, ProviderError, letterbox, parse_metadata


def test_runtime_never_imports_torch(tmp_path):
    import cv2

    img = tmp_path / "h.jpg"
    cv2.imwrite(str(img), horses())
    r = run_without_torch(textwrap.dedent(f"""
        import yolor_deploy.runtime as rt
        det = rt.Detector({str(model_path("dynamic"))!r}, imgsz=320)
        (res,) = det([{str(img)!r}])
        assert len(res) > 0, "no detections"
    """))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_predict_cli_runs_without_torch(tmp_path):
    """`yolor-deploy predict` with an ONNX model on a box without torch: the dispatcher builds every
    subcommand's parser, so no `add_arguments` may import torch."""
    import cv2

    img = tmp_path / "h.jpg"
    cv2.imwrite(str(img), horses())
    r = run_without_torch(textwrap.dedent(f"""
        from yolor_deploy.cli.main import main
        rc = main(["predict", {str(model_path("dynamic"))!r}, {str(img)!r}, "--save-dir", {str(tmp_path / "out")!r}])
        assert rc == 0, rc
    """))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_static_model_uses_its_size_and_warns_on_imgsz():
    with pytest.warns(UserWarning, match="static model"):
        det = Detector(model_path("static"), imgsz=640)
    assert det.imgsz == (320, 320) and not det.auto
    (res,) = det(horses())
    assert det.last_input_shape == (1, 3, 320, 320)
    assert res.names == ("circle", "square", "triangle") and len(res) > 0
    assert res.image_shape == (512, 773)
    assert res.xyxy[:, [0, 2]].max() <= 773 and res.xyxy[:, [1, 3]].max() <= 512 and res.xyxy.min() >= 0
    assert (np.diff(res.scores) <= 0).all()


def test_dynamic_model_pads_like_detect_py_and_rounds_imgsz():
    with pytest.warns(UserWarning, match="not a multiple of the largest stride 32: using 320x320"):
        det = Detector(model_path("dynamic"), imgsz=300)
    det(horses())
    assert det.last_input_shape == (1, 3, 256, 320)  # 320x212 padded to a multiple of 64
    assert Detector(model_path("dynamic")).imgsz == (320, 320)  # default: the export size (metadata)


def test_batches_equal_single_images(tmp_path):
    files = write_sizes_folder(tmp_path)
    imgs = [horses(), *[str(p) for p in files.values()]]
    single = Detector(model_path("dynamic"), imgsz=320)
    one = [single(im)[0] for im in imgs]
    batched = Detector(model_path("dynamic"), imgsz=320, batch_size=4)
    many = batched(imgs)
    assert batched.last.images == 7 and batched.last.batches < 7  # grouped by letterboxed shape
    for a, b in zip(one, many):
        assert_same_detections(a, b, iou_min=0.9999, score_tol=1e-6)
    assert many[1].path == str(files["tiny"])
    # a model with a fixed batch of 2: 3 images -> 2 calls, the last one padded
    with pytest.warns(UserWarning, match="takes batches of exactly 2; batch size 8 ignored"):
        fixed = Detector(model_path("static-b2"), batch_size=8)
    assert fixed.batch_size == 2
    out = fixed([horses()] * 3)
    assert fixed.last.batches == 2 and len(out) == 3
    ref = Detector(model_path("static"))(horses())[0]
    for r in out:
        assert_same_detections(ref, r, iou_min=0.9999, score_tol=1e-6)


def test_graph_nms_outputs_are_scaled_and_filtered():
    img = horses()
    with pytest.warns(UserWarning, match="iou_thres 0.6 differs"):
        det = Detector(model_path("nms"), iou_thres=0.6)
    (res,) = det(img)
    assert len(res) == 2 and res.classes.tolist() == [2, 0] and res.class_names == ["triangle", "circle"]
    lb = letterbox(img, 320, auto=False)
    r, (dw, dh) = lb.ratio[0], lb.pad
    expect = (NMS_BOXES[0, :2] - [dw, dh, dw, dh]) / r
    np.testing.assert_allclose(res.xyxy, np.clip(expect, 0, [773, 512, 773, 512]), atol=0.1)
    assert len(Detector(model_path("nms"), conf_thres=0.7)(img)[0]) == 1
    assert Detector(model_path("nms"), classes=[0])(img)[0].classes.tolist() == [0]


def test_model_without_metadata_falls_back_with_warning():
    with pytest.warns(MetadataWarning, match="no yolor_deploy metadata; assuming class names 0..2"):
        det = Detector(model_path("nometa"))
    assert det.names == ("0", "1", "2") and det.metadata.stride == (8, 16, 32) and det.imgsz == (320, 320)
    with_meta = Detector(model_path("static"))(horses())[0]
    res = det(horses())[0]
    assert_same_detections(with_meta, res, iou_min=0.9999, score_tol=0)
    assert set(res.class_names) <= {"0", "1", "2"}


def test_metadata_parsing_and_malformed_metadata(tmp_path):
    m = parse_metadata(json.dumps({"format": 1, "names": ["a", "b"], "stride": [8, 16, 32, 64], "imgsz": [640, 480],
                                   "dynamic": True, "batch": None, "nms": {"mode": "trt", "max_det": 100}}))
    assert (m.names, m.max_stride, m.imgsz, m.batch, m.nms.mode, m.nms.max_det) == (("a", "b"), 64, (640, 480), None, "trt", 100)
    for bad in ("{not json", "[1, 2]", json.dumps({"format": 2, "names": []}), json.dumps({"stride": [8]}),
                json.dumps({"names": ["a"], "nms": {"mode": "magic"}})):
        with pytest.raises(InputError, match="malformed yolor_deploy metadata"):
            parse_metadata(bad, "m.onnx")
    broken = tmp_path / "broken-meta.onnx"
    broken.write_bytes(model_path("static").read_bytes())
    meta = {"format": 1}  # no names
    set_metadata(broken, meta)
    with pytest.raises(InputError, match=r"broken-meta.onnx: malformed yolor_deploy metadata \(missing 'names'\)"):
        Detector(broken)


def test_bad_model_files_and_providers(tmp_path):
    with pytest.raises(InputError, match="no such model file"):
        Detector(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    with pytest.raises(InputError, match="junk.onnx: cannot load ONNX model"):
        Detector(junk)
    with pytest.raises(InputError, match="unknown model type '.tflite'"):
        Detector(tmp_path / "m.tflite")
    with pytest.raises(ProviderError, match="'cuda' is not available.*available: .*CPUExecutionProvider"):
        Detector(model_path("static"), providers="cuda")
    with pytest.raises(ProviderError, match="'NoSuchExecutionProvider' is not available"):
        Detector(model_path("static"), providers=["NoSuchExecutionProvider"])
    assert Detector(model_path("static"), providers="cpu").backend.providers == ["CPUExecutionProvider"]


def test_a_bug_of_ours_around_the_session_is_not_called_a_bad_model(monkeypatch):
    """Only ONNX Runtime's own errors become "cannot load ONNX model"; a TypeError of ours becomes an
    InternalError naming the file (`open_backend`), the TypeError chained, so no test mistakes a bug for a
    refused file."""
    import onnxruntime as ort

    from yolor_deploy.errors import InternalError

    def buggy(*args, **kwargs):
        raise TypeError("InferenceSession() got an unexpected keyword argument 'sess_opts'")

    monkeypatch.setattr(ort, "InferenceSession", buggy)
    with pytest.raises(InternalError, match="tiny-static-nc3.onnx: internal error .*sess_opts") as e:
        Detector(model_path("static"))
    assert isinstance(e.value.__cause__, TypeError)


def test_trt_nms_export_explains_itself(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("EfficientNMS_TRT", ["images", "images"], ["num_dets"], domain="TRT")
    graph = helper.make_graph([node], "trt", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("num_dets", TensorProto.INT32, [1, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("TRT", 1)])
    path = tmp_path / "trt.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InputError, match="EfficientNMS_TRT plugin .* --providers tensorrt"):
        Detector(path)


def test_torch_backend_and_onnx_agree_through_one_path(tmp_path):
    """The same network as nn.Module (TorchBackend) and as dynamic ONNX give the same detections on
    images of every awkward kind: tiny, portrait, landscape, grayscale, RGBA, 16-bit PNG."""
    from yolor_deploy.runtime.backends.torch_backend import TorchBackend

    files = write_sizes_folder(tmp_path)
    sources = [horses(), *[str(p) for p in files.values()]]
    pt = Detector(TorchBackend(tiny_module()), imgsz=320)
    ox = Detector(model_path("dynamic"), imgsz=320)
    assert pt.names == ox.names and pt.imgsz == ox.imgsz and pt.auto and ox.auto
    n = 0
    for a, b in zip(pt(sources), ox(sources)):
        assert_same_detections(a, b)
        n += len(a)
    assert n > 20  # the comparison is not vacuous


def test_backend_failure_names_the_file(tmp_path):
    from yolor_deploy.runtime.backends.torch_backend import TorchBackend

    with pytest.raises(InputError, match="no such checkpoint file"):
        TorchBackend(tmp_path / "none.pt")


def test_warning_free_normal_path():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Detector(model_path("static"))(horses())
