"""Tampered models and hostile images: one-line InputErrors naming the file, bounded time and memory."""
from __future__ import annotations

import json
import os
import re
import struct
import time

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers.runtime_models import metadata, model_path
from yolor_deploy.cli.main import main
from yolor_deploy.contract import METADATA_KEY
from yolor_deploy.errors import InputError
from yolor_deploy.runtime import Detector, resolve_sources
from yolor_deploy.runtime.inputs.image_header import ENV_MAX_PIXELS, image_size
from yolor_deploy.runtime.inputs.sources import read_image
from yolor_deploy.runtime.post.nms import MAX_NMS, non_max_suppression


def constant_model(path, out_shape, meta: dict | None, in_shape=(1, 3, 320, 320), extra_outputs=()):
    """An ONNX model whose output(s) are constants of the given shapes, with `meta` as our metadata."""
    nodes, outs = [], []
    for name, shape in [("output", out_shape), *extra_outputs]:
        arr = np.random.default_rng(0).random(shape, dtype=np.float32)
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name + "_v")))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(in_shape))],
                              outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if meta is not None:
        model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("out_shape,meta_kw,in_shape,why", [
    ((1, 8, 6300), {}, (1, 3, 320, 320), "looks transposed"),
    ((1, 6300, 8), {"nms": "onnx"}, (1, 3, 320, 320), "metadata says NMS is in the graph"),
    ((1, 6300), {}, (1, 3, 320, 320), "is not [B, N, 5+nc]"),
    ((1, 1, 6300, 8), {}, (1, 3, 320, 320), "is not [B, N, 5+nc]"),
    ((1, 6300, 5), {}, (1, 3, 320, 320), "has 5 columns"),
    ((1, 6300, 9), {}, (1, 3, 320, 320), "has 9 columns but its metadata names 3 classes"),
    ((1, 6300, 8), {}, (1, 1, 320, 320), "is not an RGB image batch"),
])
def test_model_outputs_are_checked_against_the_metadata(tmp_path, out_shape, meta_kw, in_shape, why):
    path = constant_model(tmp_path / "m.onnx", out_shape, metadata(**meta_kw), in_shape)
    with pytest.raises(InputError, match=f"m.onnx: .*{re.escape(why)}"):
        Detector(path)


def test_transposed_output_without_metadata_is_refused(tmp_path):
    path = constant_model(tmp_path / "m.onnx", (1, 8, 6300), None)
    with pytest.warns(UserWarning), pytest.raises(InputError, match="looks transposed"):
        Detector(path)


@pytest.mark.parametrize("patch,why", [
    ({"stride": [0]}, "stride"),
    ({"stride": ["Infinity"]}, "stride"),
    ({"nms": {"mode": "none", "max_det": 1e300}}, "max_det"),
    ({"imgsz": [-1, 5]}, "imgsz"),
])
def test_tampered_metadata_is_one_line(tmp_path, capsys, patch, why):
    meta = {**metadata(), **patch}
    path = constant_model(tmp_path / "m.onnx", (1, 6300, 8), meta)
    with pytest.raises(InputError, match=f"m.onnx: malformed yolor_deploy metadata .*{why}"):
        Detector(path)
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    assert main(["predict", str(path), str(img), "--save-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "malformed yolor_deploy metadata" in err[0]


def test_metadata_nested_deep_is_refused(tmp_path):
    path = constant_model(tmp_path / "m.onnx", (1, 6300, 8), None)
    m = onnx.load(str(path))
    m.metadata_props.add(key=METADATA_KEY, value="[" * 100_000 + "]" * 100_000)
    onnx.save(m, str(path))
    with pytest.raises(InputError, match="nested too deeply"):
        Detector(path)


def test_nms_graph_with_absurd_num_dets_is_clipped(tmp_path):
    extra = [("num_dets", (1, 1)), ("boxes", (1, 5, 4)), ("scores", (1, 5)), ("classes", (1, 5))]
    path = tmp_path / "nms.onnx"
    nodes, outs = [], []
    consts = {"num_dets": np.array([[10**9]], np.int64), "boxes": np.tile(np.array([10, 10, 50, 50], np.float32), (1, 5, 1)),
              "scores": np.full((1, 5), 0.9, np.float32), "classes": np.zeros((1, 5), np.int64)}
    for name, arr in consts.items():
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name + "_v")))
        outs.append(helper.make_tensor_value_info(name, TensorProto.INT64 if arr.dtype == np.int64 else TensorProto.FLOAT,
                                                  list(arr.shape)))
    assert [n for n, _ in extra] == list(consts)
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 320, 320])], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata(nms="onnx", max_det=5)))
    onnx.save(model, str(path))
    (res,) = Detector(path)(np.zeros((320, 320, 3), np.uint8))
    assert len(res) == 5


def _jpeg_declaring(w: int, h: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    b = bytearray(buf.tobytes())
    i = 2
    while not (b[i] == 0xFF and b[i + 1] in (0xC0, 0xC2)):
        i += 2 + struct.unpack(">H", b[i + 2:i + 4])[0]
    b[i + 5:i + 9] = struct.pack(">HH", h, w)
    return bytes(b)


def test_header_bomb_jpeg_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.jpg"
    p.write_bytes(_jpeg_declaring(30000, 30000))
    assert len(p.read_bytes()) < 1000 and image_size(p.read_bytes()) == (30000, 30000)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"bomb.jpg: 30000x30000 pixels exceeds the limit"):
        read_image(p)
    assert time.perf_counter() - t0 < 1.0


def test_header_bomb_png_is_refused(tmp_path):
    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    b = bytearray(buf.tobytes())
    b[16:24] = struct.pack(">II", 100_000, 100_000)
    p = tmp_path / "bomb.png"
    p.write_bytes(bytes(b))
    with pytest.raises(InputError, match="100000x100000 pixels exceeds the limit"):
        read_image(p)


def test_pixel_limit_is_configurable(tmp_path, monkeypatch, capsys):
    img = tmp_path / "small.png"
    cv2.imwrite(str(img), np.zeros((40, 50, 3), np.uint8))
    assert image_size(img.read_bytes()) == (50, 40)
    monkeypatch.setenv(ENV_MAX_PIXELS, "1000")
    with pytest.raises(InputError, match="50x40 pixels exceeds the limit of 1,000"):
        read_image(img)
    monkeypatch.delenv(ENV_MAX_PIXELS)
    assert read_image(img).shape == (40, 50, 3)
    rc = main(["predict", str(model_path("static")), str(img), "--max-pixels", "100", "--save-dir", str(tmp_path / "o")])
    assert rc == 2 and "exceeds the limit of 100 decoded pixels" in capsys.readouterr().err
    os.environ.pop(ENV_MAX_PIXELS, None)


def test_nms_candidates_are_capped():
    rng = np.random.default_rng(0)
    n = 100_000
    pred = np.zeros((1, n, 8), np.float32)
    pred[0, :, :2] = rng.random((n, 2)) * 600
    pred[0, :, 2:4] = 20
    pred[0, :, 4] = 0.5 + 0.5 * rng.random(n)
    pred[0, :, 5:] = rng.random((n, 3))
    pred[0, :10, :4] = np.nan  # a broken model's rows: no detections, no warnings
    t0 = time.perf_counter()
    (det,) = non_max_suppression(pred, 0.25, 0.45, max_det=300)
    assert time.perf_counter() - t0 < 10 and len(det) == 300 and np.isfinite(det).all()
    assert MAX_NMS == 30_000


def test_glob_through_a_symlink_loop_lists_each_file_once(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    cv2.imwrite(str(d / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    os.symlink(d, d / "loop")
    os.symlink(d / "a.jpg", d / "b.jpg")
    found = resolve_sources([str(d / "**" / "*.jpg")])
    assert [s.path.name for s in found] == ["a.jpg"]


@pytest.mark.parametrize("xml", [b"<net>", b"\x00\xff garbage", b'<?xml version="1.0"?><net name="m" version="11"><layers>'
                                 b'<layer id="0" type="Nope" version="opset1"/></layers></net>'])
def test_corrupt_openvino_ir_is_a_one_line_input_error(tmp_path, xml):
    """A file OpenVINO cannot read is the file's fault (InputError naming it), never an InternalError."""
    pytest.importorskip("openvino")
    from yolor_deploy import Detector

    path = tmp_path / "m.xml"
    path.write_bytes(xml)
    path.with_suffix(".bin").write_bytes(b"\x00" * 16)
    with pytest.raises(InputError) as e:
        Detector(path, backend="openvino")
    assert not e.value.internal and str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value), e.value
