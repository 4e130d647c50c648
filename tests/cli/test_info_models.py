"""`yolor-deploy info MODEL.onnx|MODEL.xml`: what an exported model holds, read by the runtime (no torch)."""
from __future__ import annotations

import json
import textwrap
import warnings

import pytest

from helpers.no_torch import run_without_torch
from helpers.runtime_models import model_path
from helpers.upstream_detect import CKPT, IMAGES
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.cli.main import main
from yolor_deploy.export import export_onnx
from yolor_deploy.quantize.ort_qdq import quantize_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("info")
    model = load_checkpoint(CKPT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        static = export_onnx(model, d / "static.onnx", imgsz=(256, 256), verify=False, openvino=True)
        dyn = export_onnx(model, d / "dyn.onnx", imgsz=(256, 256), dynamic=True, nms="onnx", verify=False)
    quantize_onnx(d / "static.onnx", d / "int8.onnx", [IMAGES], calib_size=2)
    return {"static": d / "static.onnx", "xml": d / "static.xml", "dyn": d / "dyn.onnx", "int8": d / "int8.onnx",
            "sha": static.metadata.source_sha256, "dyn_meta": dyn.metadata}


def info_json(path, capsys) -> dict:
    assert main(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_static_onnx(exported, capsys):
    info = info_json(exported["static"], capsys)
    assert info["format"] == "ONNX" and info["runtime"].startswith("onnxruntime")
    assert info["input"] == {"shape": [1, 3, 256, 256], "dtype": "float32"}
    assert info["outputs"] == {"output": [1, 4032, 8]}  # 3 anchors x (32^2 + 16^2 + 8^2)
    assert info["names"] == ["circle", "square", "triangle"] and info["stride"] == [8, 16, 32]
    assert info["imgsz"] == [256, 256] and not info["dynamic"] and info["nms"]["mode"] == "none"
    assert info["quantized"] is None and info["source_sha256"] == exported["sha"] and len(info["source_sha256"]) == 64
    assert info["opset"] == 17 and info["op_types"]["Conv"] > 50 and "ScatterND" not in info["op_types"]
    assert "BatchNormalization" not in info["op_types"] and info["metadata"] == "yolor_deploy" and not info["warnings"]


def test_dynamic_onnx_with_nms(exported, capsys):
    info = info_json(exported["dyn"], capsys)
    assert info["input"]["shape"] == ["?", 3, "?", "?"] and info["dynamic"] and info["batch"] is None
    assert list(info["outputs"]) == ["num_dets", "boxes", "scores", "classes"]
    assert info["nms"] == {"mode": "onnx", **{k: getattr(exported["dyn_meta"].nms, k) for k in ("conf_thres", "iou_thres", "max_det")}}
    assert info["op_types"]["NonMaxSuppression"] >= 1


def test_int8_and_ir(exported, capsys):
    assert info_json(exported["int8"], capsys)["quantized"] == "int8-qdq"
    ir = info_json(exported["xml"], capsys)
    onnx_info = info_json(exported["static"], capsys)
    assert ir["format"] == "OpenVINO IR" and ir["runtime"].startswith("openvino") and "opset" not in ir
    same = ("input", "outputs", "names", "stride", "imgsz", "nms", "source_sha256", "version")
    assert {k: ir[k] for k in same} == {k: onnx_info[k] for k in same}


def test_table_output(exported, capsys):
    assert main(["info", str(exported["dyn"])]) == 0
    out = capsys.readouterr().out
    for words in ("(ONNX)", "3: circle, square, triangle", "in the graph (onnx): conf 0.25", "dynamic",
                  "opset 17", exported["sha"]):
        assert words in out, words


def test_model_without_metadata_warns_once(capsys):
    assert main(["info", str(model_path("nometa")), "--json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["metadata"] == "none (defaults assumed)" and info["names"] == ["0", "1", "2"]
    assert len(info["warnings"]) == 1 and "no yolor_deploy metadata" in info["warnings"][0]
    assert main(["info", str(model_path("nometa"))]) == 0
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("warning: ") and "no yolor_deploy metadata" in err[0]


def test_corrupt_model_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a model at all")
    assert main(["info", str(bad)]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.onnx: cannot load ONNX model" in err[0]


def test_info_on_a_model_runs_without_torch(exported):
    r = run_without_torch(textwrap.dedent(f"""
        import json, io, contextlib
        from yolor_deploy.cli.main import main
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["info", {str(exported["xml"])!r}, "--json"]) == 0
        assert json.loads(buf.getvalue())["names"] == ["circle", "square", "triangle"]
    """))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
