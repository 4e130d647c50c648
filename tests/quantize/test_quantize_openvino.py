"""`yolor-deploy quantize --backend openvino`: NNCF int8 OpenVINO IR of our exports.

The trained fixture (../shared/fixtures/trained) is exported at 256, quantized by NNCF calibrated on
its 20 images, and measured through `Detector` + `evaluate` (pycocotools).
Measured (openvino 2026.4, nncf 3.4, performance preset, SiLU fused before NNCF): mAP@0.5 fp32 0.957 /
int8 0.957, mAP@0.5:0.95 0.746 / 0.750. Calibration and evaluation share the 20 images, so the band is generous.
"""
from __future__ import annotations

import json

import numpy as np
import openvino as ov
import pytest

from helpers.fixtures import FIXTURES
from yolor_deploy.cli.main import main
from yolor_deploy.errors import InputError
from yolor_deploy.eval import evaluate
from yolor_deploy.export import export_onnx
from yolor_deploy.quantize.openvino_nncf import float_tail_is_kept
from yolor_deploy.quantize.ort_qdq import quantize_onnx
from yolor_deploy.runtime import Detector, box_iou

TRAINED = FIXTURES / "trained"
CKPT, IMAGES, LABELS = TRAINED / "shapes-ssss-w025.pt", TRAINED / "images", TRAINED / "labels"
MAP50_DROP, MAP_DROP = 0.03, 0.05  # measured: +0.000 and +0.003


def measure(model):
    return evaluate(Detector(model, conf_thres=0.001, iou_thres=0.65), IMAGES, LABELS)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("nncf")
    fp32, int8 = d / "fp32.onnx", d / "int8.xml"
    export_onnx(str(CKPT), fp32, imgsz=(256, 256), verify=False)
    result = quantize_onnx(fp32, int8, [IMAGES], backend="openvino")
    return {"dir": d, "fp32": fp32, "int8": int8, "result": result}


def test_ir_is_int8_with_float_decode_and_metadata(models):
    res, xml = models["result"], models["int8"]
    assert xml.exists() and xml.with_suffix(".bin").exists()
    assert not [p for p in models["dir"].iterdir() if ".tmp" in p.name]
    assert res.op_types.get("FakeQuantize", 0) >= 50 and len(res.float_nodes) > 20
    assert float_tail_is_kept(xml, res.float_nodes)
    m = ov.Core().read_model(str(xml))
    meta = json.loads(m.get_rt_info(["yolor_deploy"]).astype(str))
    assert meta["quantized"] == "int8-nncf" and meta["names"] == ["circle", "square", "triangle"]
    assert meta["quantization"]["calibration_images"] == 20
    # weights stored as int8 constants: the .bin is well under the fp32 ONNX
    assert xml.with_suffix(".bin").stat().st_size < 0.4 * models["fp32"].stat().st_size
    assert any(op.get_type_name() == "Constant" and op.get_element_type().get_type_name() == "i8"
               for op in m.get_ops())


def test_int8_map_within_band_of_fp32(models):
    m32, m8 = measure(models["fp32"]), measure(models["int8"])
    assert m32.map50 > 0.9
    assert m8.map50 >= m32.map50 - MAP50_DROP and m8.map >= m32.map - MAP_DROP, (m32, m8)


def test_int8_detections_are_close_to_fp32(models):
    d32, d8 = Detector(models["fp32"]), Detector(models["int8"])
    images = sorted(IMAGES.glob("*.jpg"))[:5]
    n32 = n8 = 0
    for a, b in zip(d32(images), d8(images)):
        n32, n8 = n32 + len(a), n8 + len(b)
        if len(a) and len(b):  # the best fp32 box is found by int8 at IoU > 0.8
            assert box_iou(a.xyxy[:1], b.xyxy).max() > 0.8
    assert n32 > 0 and abs(n8 - n32) <= max(2, 0.2 * n32)


@pytest.mark.parametrize("kwargs,words", [
    ({"method": "percentile"}, "--method and --no-per-channel are ONNX Runtime options"),
    ({"per_channel": False}, "--method and --no-per-channel are ONNX Runtime options"),
    ({"backend": "tflite"}, "quantization backend 'tflite'"),
])
def test_bad_options(models, tmp_path, kwargs, words):
    kw = {"backend": "openvino", **kwargs}
    with pytest.raises(InputError, match=words):
        quantize_onnx(models["fp32"], tmp_path / "q.xml", [IMAGES], **kw)
    assert not list(tmp_path.iterdir())


def test_onnx_output_name_refused_for_openvino(models, tmp_path):
    with pytest.raises(InputError, match=r"q.onnx: an OpenVINO int8 model is an IR: give an output ending in \.xml"):
        quantize_onnx(models["fp32"], tmp_path / "q.onnx", [IMAGES], backend="openvino")
    assert not list(tmp_path.iterdir())


def test_cli_openvino_with_val(models, tmp_path, capsys):
    out = tmp_path / "cli-int8.xml"
    rc = main(["quantize", str(models["fp32"]), "--calib", str(IMAGES), "--calib-size", "8", "--backend", "openvino",
               "-o", str(out), "--val-images", str(IMAGES), "--val-labels", str(LABELS)])
    text = capsys.readouterr().out
    assert rc == 0 and out.exists() and out.with_suffix(".bin").exists()
    assert "calibrated on 8 image(s) (NNCF)" in text and "FakeQuantize" in text
    line = [x for x in text.splitlines() if x.startswith("mAP@0.5 fp32")][0]
    vals = [float(v) for v in line.replace(";", "").split() if v[0].isdigit()]
    assert len(vals) == 4 and vals[1] >= vals[0] - MAP50_DROP and np.isfinite(vals).all()
