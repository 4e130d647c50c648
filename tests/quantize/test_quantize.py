"""`yolor_deploy.quantize` and `yolor-deploy quantize`: ORT static int8 (QDQ) of our exports.

The real test quantizes the trained fixture (../shared/fixtures/trained) calibrated on its 20
images and measures mAP of the fp32 and int8 models at 256 through `Detector` + `evaluate`.
Measured (onnxruntime 1.32, MinMax, per-channel): mAP@0.5 fp32 0.957 / int8 0.959, mAP@0.5:0.95
0.746 / 0.727; calibrated on one half and measured on the other, MinMax and Percentile tie
(mAP@0.5:0.95 0.728 / 0.731). Quantizing the decode too gives mAP 0.0 (why the tail stays float).
Calibration and evaluation share the 20 images here, so the band is on the generous side.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers.fixtures import FIXTURES
from yolor_deploy.cli.main import main
from yolor_deploy.errors import InputError
from yolor_deploy.eval import evaluate
from yolor_deploy.export import export_onnx
from yolor_deploy.export.passes import get_metadata
from yolor_deploy.quantize.ort_qdq import (
    calibration_batches,
    pick_evenly,
    quantize_onnx,
    tail_nodes,
)
from yolor_deploy.runtime import Detector, letterbox, read_image

TRAINED = FIXTURES / "trained"
CKPT, IMAGES, LABELS = TRAINED / "shapes-ssss-w025.pt", TRAINED / "images", TRAINED / "labels"
IMGSZ = (256, 256)
MAP50_DROP, MAP_DROP = 0.03, 0.05  # measured: +0.002 and -0.019


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def measure(model: Path):
    return evaluate(Detector(model, conf_thres=0.001, iou_thres=0.65), IMAGES, LABELS)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("quant")
    fp32, int8 = d / "fp32.onnx", d / "int8.onnx"
    export_onnx(str(CKPT), fp32, imgsz=IMGSZ, opset=17, verify=False)
    result = quantize_onnx(fp32, int8, [IMAGES])
    return {"dir": d, "fp32": fp32, "int8": int8, "result": result}


@pytest.fixture(scope="module")
def maps(models):
    return measure(models["fp32"]), measure(models["int8"])


# --- the trained model --------------------------------------------------------------------------
def test_int8_graph_has_qdq_int8_weights_and_float_decode(models):
    fp32, int8 = onnx.load(str(models["fp32"])), onnx.load(str(models["int8"]))
    onnx.checker.check_model(int8)
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("QuantizeLinear") > 50 and ops.count("DequantizeLinear") > 50
    int8_weights = [t for t in int8.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) == ops.count("Conv") == 67  # every conv weight is int8
    # per-channel: weight DequantizeLinear carries one scale per output channel
    inits = {t.name: t for t in int8.graph.initializer}
    w_dq = [n for n in int8.graph.node if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) in int8_weights]
    assert w_dq and all(len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1 for n in w_dq)
    assert models["int8"].stat().st_size < 0.35 * models["fp32"].stat().st_size
    # the decode (every node after the last convs) is untouched float: same nodes, no QDQ around them
    tail = set(tail_nodes(fp32))
    assert tail and {"CumSum", "Pow", "Where"} <= {n.op_type for n in fp32.graph.node if n.name in tail}
    producers = {o: n for n in int8.graph.node for o in n.output}
    for n in int8.graph.node:
        if n.name in tail:
            assert all(producers[i].op_type != "DequantizeLinear" for i in n.input if i in producers), n.name
    assert int8.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    meta, meta32 = get_metadata(int8), get_metadata(fp32)
    assert meta.quantized == "int8-qdq" and meta.quantization["calibration_images"] == 20
    assert meta.replace(quantized="", quantization=None) == meta32
    assert not [p for p in models["dir"].iterdir() if p.name.startswith(".")]  # no temp file left


def test_int8_map_within_band_of_fp32(maps):
    m32, m8 = maps
    print(f"mAP@0.5 fp32 {m32.map50:.4f} int8 {m8.map50:.4f}; mAP@0.5:0.95 fp32 {m32.map:.4f} int8 {m8.map:.4f}")
    assert m32.map50 > 0.9
    assert m8.map50 >= m32.map50 - MAP50_DROP and m8.map >= m32.map - MAP_DROP
    assert m8.map50 <= m32.map50 + 0.02  # not suspiciously better: it is the same network


def test_nms_graph_quantizes_before_nms(models):
    d = models["dir"]
    fp32, int8 = d / "nms.onnx", d / "nms-int8.onnx"
    export_onnx(str(CKPT), fp32, imgsz=IMGSZ, opset=17, verify=False, nms="onnx")
    res = quantize_onnx(fp32, int8, [IMAGES], calib_size=8)
    assert res.metadata.nms.mode == "onnx" and res.metadata.quantization["calibration_images"] == 8
    q = onnx.load(str(int8))
    assert "NonMaxSuppression" in {n.op_type for n in q.graph.node} and "QuantizeLinear" in res.op_types
    assert {n.name for n in q.graph.node if n.op_type == "NonMaxSuppression"} <= set(res.float_nodes)
    det32, det8 = (Detector(m, conf_thres=0.25) for m in (fp32, int8))
    imgs = [read_image(p) for p in sorted(IMAGES.iterdir())[:6]]
    n32, n8 = sum(len(r) for r in det32(imgs)), sum(len(r) for r in det8(imgs))
    assert n32 > 10 and abs(n8 - n32) <= 0.2 * n32, (n32, n8)


# --- calibration input --------------------------------------------------------------------------
def test_calibration_batches_are_the_runtime_preprocessing(models):
    img = read_image(sorted(IMAGES.iterdir())[0])[:200]  # non-square: padding shows
    (x,) = calibration_batches(models["fp32"], [img])
    ref = letterbox(img, IMGSZ, auto=False).image[:, :, ::-1].transpose(2, 0, 1)[None] / np.float32(255)
    assert x.shape == (1, 3, *IMGSZ) and x.dtype == np.float32
    np.testing.assert_array_equal(x, ref.astype(np.float32))


def test_pick_evenly():
    assert pick_evenly(list(range(10)), 3) == [0, 4, 9]  # 4.5 rounds to even
    assert pick_evenly([1, 2], 5) == [1, 2]


# --- refusals -----------------------------------------------------------------------------------
def test_opset12_model_refused_with_one_line(models, capsys):
    """Our exporter cannot write opset 12 (its decode rewrite uses aten::unflatten, opset 13), so the
    opset-12 file is the eager model exported as upstream does, given our metadata."""
    import torch

    from yolor_deploy.checkpoint import load_checkpoint
    from yolor_deploy.export.passes import export_module, set_metadata

    d = models["dir"]
    old, out = d / "opset12.onnx", d / "opset12-int8.onnx"
    with torch.no_grad():
        proto = export_module(load_checkpoint(CKPT).float().eval(), (torch.zeros(1, 3, *IMGSZ),),
                              ["images"], ["output"], None, 12)
    onnx.save(set_metadata(proto, get_metadata(onnx.load(str(models["fp32"])))), str(old))
    assert main(["quantize", str(old), "--calib", str(IMAGES), "-o", str(out)]) == 2
    line = error_line(capsys.readouterr().err)
    assert "opset 12" in line and "--opset 13" in line and "re-export" in line
    assert not out.exists()


def test_missing_calibration_folder(models, tmp_path, capsys):
    with pytest.raises(InputError, match="no such file or folder"):
        quantize_onnx(models["fp32"], tmp_path / "x.onnx", [tmp_path / "missing"])
    assert main(["quantize", str(models["fp32"]), "--calib", str(tmp_path / "missing"),
                 "-o", str(tmp_path / "x.onnx")]) == 2
    assert "missing: no such file or folder" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("argv, words", [
    (["--val-images", "IMAGES"], "--val-images and --val-labels go together"),
    (["--calib-size", "0"], "at least 1"),
])
def test_cli_bad_options(models, tmp_path, capsys, argv, words):
    argv = [str(IMAGES) if a == "IMAGES" else a for a in argv]
    rc = main(["quantize", str(models["fp32"]), "--calib", str(IMAGES), "-o", str(tmp_path / "x.onnx"), *argv])
    assert rc == 2 and words in error_line(capsys.readouterr().err)


def test_int8_model_refused_as_input(models, tmp_path):
    with pytest.raises(InputError, match="already quantized"):
        quantize_onnx(models["int8"], tmp_path / "x.onnx", [IMAGES])


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_per_tensor_with_val(models, tmp_path, capsys):
    out = tmp_path / "pt.onnx"
    rc = main(["quantize", str(models["fp32"]), "--calib", str(IMAGES), "--calib-size", "4", "--no-per-channel",
               "-o", str(out), "--val-images", str(IMAGES), "--val-labels", str(LABELS)])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file() and "calibrated on 4 image(s)" in text
    m = re.search(r"mAP@0.5 fp32 (\S+) int8 (\S+); mAP@0.5:0.95 fp32 (\S+) int8 (\S+)", text)
    assert m, text
    map50_32, map50_8, map_32, map_8 = map(float, m.groups())
    assert map50_32 > 0.9 and map50_8 >= map50_32 - MAP50_DROP and map_8 >= map_32 - MAP_DROP, text
    q = onnx.load(str(out))
    assert get_metadata(q).quantization["per_channel"] is False
    inits = {t.name: t for t in q.graph.initializer}
    w_dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
            and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and len(inits[n.input[0]].dims) == 4]
    assert w_dq and all(len(inits[n.input[1]].dims) == 0 for n in w_dq)  # one scale per tensor


def test_bench_int8_script_runs(capsys):
    """scripts/bench_int8.py end to end on a small variant (smoke test: no timing is asserted)."""
    import importlib.util
    import math

    spec = importlib.util.spec_from_file_location("bench_int8", Path(__file__).parents[2] / "scripts" / "bench_int8.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["yolor-ssss-s2d", "--imgsz", "128", "--runs", "1", "--warmup", "0", "--noise", "1",
                     "--openvino"]) == 0
    out = capsys.readouterr().out
    ratio = float(re.search(r"ratio int8/fp32 \(median latency\): (\S+)", out)[1])
    assert math.isfinite(ratio) and ratio > 0 and "fp32: median" in out and "int8: median" in out
    ov = dict(re.findall(r"ratio (openvino fp32|openvino int8)/fp32 \(median latency, fp32 = ONNX Runtime\): (\S+)", out))
    assert set(ov) == {"openvino fp32", "openvino int8"} and all(float(v) > 0 for v in ov.values()), out
