"""OpenVINO: `export --openvino` writes a verified IR with our metadata, and the runtime's OpenVINO backend
(IR or ONNX) reproduces upstream detect.py on the trained fixture, through the same pre/post path."""
from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from helpers.fixtures import fixture_path
from helpers.no_torch import run_without_torch
from helpers.runtime_data import assert_same_detections, write_sizes_folder
from helpers.upstream_detect import CKPT, assert_reproduces_upstream, images
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.cli.main import main
from yolor_deploy.contract import ModelMetadata
from yolor_deploy.errors import ExportError, InputError, VerificationError
from yolor_deploy.export import export_onnx
from yolor_deploy.runtime import Detector, open_backend, parse_backend
from yolor_deploy.runtime.backends.openvino import OpenVINOBackend


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(CKPT)


@pytest.fixture(scope="module")
def ir(model, tmp_path_factory) -> dict[str, object]:
    """The trained model exported with --openvino: static (verified), with graph NMS, and dynamic."""
    folder = tmp_path_factory.mktemp("ov")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kw in {"static": {}, "nms": {"nms": "onnx"}, "dynamic": {"dynamic": True}}.items():
            out[name] = export_onnx(model, folder / f"shapes-{name}.onnx", imgsz=(320, 320), openvino=True,
                                    simplify=name != "dynamic", verify_image=str(fixture_path("horses.jpg")), **kw)
    return out


def test_export_writes_a_verified_ir_with_metadata(ir):
    res = ir["static"]
    xml, bin_ = res.openvino_paths
    assert (xml.name, bin_.name) == ("shapes-static.xml", "shapes-static.bin") and bin_.stat().st_size > 1e6
    assert not [p for p in xml.parent.iterdir() if ".tmp" in p.name]  # the temporary folder is gone
    cases = {c.name: c for c in res.report.cases}
    assert {"image 320x320", "random 320x320", "openvino image 320x320", "openvino random 320x320"} <= set(cases)
    for name in ("openvino image 320x320", "openvino random 320x320"):
        c = cases[name]
        assert c.passed and c.output_shape == (1, 6300, 8) and c.detections.rate == 1.0
        assert all(g.onnx_err <= g.tolerance for g in c.groups)
    meta = ModelMetadata.from_json(ov.Core().read_model(str(xml)).get_rt_info(["yolor_deploy"]).astype(str))
    assert meta == res.metadata and meta.names == ("circle", "square", "triangle")


def test_nms_ir_is_checked_against_numpy_nms_in_openvino(ir):
    rep = ir["nms"].report
    assert rep.nms.passed and rep.nms_openvino.passed
    assert rep.nms_openvino.detections == rep.nms_openvino.matched > 0
    assert rep.to_dict()["nms_openvino"]["rate"] == 1.0


@pytest.mark.parametrize("kind", ["static", "nms"])
def test_ir_reproduces_upstream_detect_320(ir, kind):
    det = Detector(ir[kind].openvino_paths[0], imgsz=320)
    assert det.backend.name.startswith("openvino") and det.names == ("circle", "square", "triangle")
    assert det.metadata.nms.mode == ("onnx" if kind == "nms" else "none")
    assert assert_reproduces_upstream(det) == 155


def test_onnx_file_runs_in_openvino_with_its_metadata(ir):
    det = Detector(ir["static"].path, imgsz=320, backend="openvino")
    assert det.backend.name.startswith("openvino") and det.metadata.from_model
    assert assert_reproduces_upstream(det) == 155


def test_dynamic_ir_agrees_with_the_checkpoint_on_every_kind_of_image(ir, tmp_path):
    sources = images() + [str(p) for p in write_sizes_folder(tmp_path).values()]
    pt, xml = Detector(CKPT, imgsz=320, batch_size=2), Detector(ir["dynamic"].openvino_paths[0], imgsz=320,
                                                                batch_size=2)
    assert xml.backend.input_shape == (None, 3, None, None)
    shapes, n = set(), 0
    for a, b in zip(pt(sources), xml(sources)):
        assert_same_detections(a, b, iou_min=0.99, score_tol=1e-4)
        shapes.add(a.image_shape)
        n += len(a)
    assert n > 155 and len(shapes) >= 5


def test_raw_outputs_match_onnxruntime(ir):
    ort_b = open_backend(ir["static"].path)
    ov_b = open_backend(ir["static"].openvino_paths[0])
    x = np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)
    (a,), (b,) = ort_b(x), ov_b(x)
    assert a.shape == b.shape == (1, 6300, 8)
    assert np.abs(a[..., 4:] - b[..., 4:]).max() < 1e-4 and np.abs(a[..., :4] - b[..., :4]).max() < 1e-2


def test_failing_verification_writes_no_ir(model, tmp_path, monkeypatch):
    import yolor_deploy.verify.verify as verify

    real = verify.check_groups

    def strict(*args):  # a verifier that fails every group: nothing may be written
        groups = real(*args)
        for g in groups:
            g.passed = False
        return groups

    monkeypatch.setattr(verify, "check_groups", strict)
    with pytest.raises(VerificationError, match="verification failed"):
        export_onnx(model, tmp_path / "bad.onnx", imgsz=(256, 256), openvino=True, simplify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.failed.onnx"]


def test_openvino_with_trt_nms_is_refused(model, tmp_path):
    with pytest.raises(ExportError, match="EfficientNMS_TRT runs only in TensorRT"):
        export_onnx(model, tmp_path / "t.onnx", imgsz=(256, 256), nms="trt", openvino=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("spec,want", [("auto", ("auto", None)), ("ov", ("openvino", None)),
                                       ("openvino:gpu", ("openvino", "gpu")), ("ORT", ("onnxruntime", None))])
def test_parse_backend(spec, want):
    assert parse_backend(spec) == want


def test_backend_errors_are_one_line(ir, tmp_path, capsys):
    xml = ir["static"].openvino_paths[0]
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(xml.read_bytes())  # no .bin beside it
    cases = [
        (lambda: open_backend(xml, backend="onnxruntime"), "the onnxruntime backend cannot run a .xml file"),
        (lambda: open_backend(CKPT, backend="openvino"), "the openvino backend cannot run a .pt file"),
        (lambda: open_backend(xml, backend="tflite"), "backend 'tflite': choose one of"),
        (lambda: open_backend(ir["static"].path, backend="onnxruntime:GPU"), "backend 'onnxruntime:GPU'"),
        (lambda: OpenVINOBackend(lonely), "lonely.xml: OpenVINO IR without its weights file lonely.bin"),
        (lambda: open_backend(xml, providers="cuda"), "execution providers are an ONNX Runtime setting"),
        (lambda: OpenVINOBackend(xml, device="NPU7"), "OpenVINO device 'NPU7' is not available; available: CPU"),
    ]
    for call, msg in cases:
        with pytest.raises(InputError, match=msg.replace("(", r"\(").replace(".", r"\.")) as e:
            call()
        assert "\n" not in str(e.value)
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("<net>not an IR")
    garbage.with_suffix(".bin").write_bytes(b"\0" * 16)
    assert main(["predict", str(garbage), str(fixture_path("horses.jpg")), "--save-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "garbage.xml: cannot load model in OpenVINO" in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_cli_export_openvino_then_predict_and_bench(tmp_path, capsys):
    out = tmp_path / "s.onnx"
    assert main(["export", str(CKPT), "--imgsz", "320", "--openvino", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"saved {tmp_path / 's.xml'}" in printed.replace("\n", "") and "openvino image 320x320" in printed
    pred = tmp_path / "pred"
    assert main(["predict", str(tmp_path / "s.xml"), *images()[:3], "--save-dir", str(pred), "--save-json"]) == 0
    doc = json.loads((pred / "predictions.json").read_text())
    assert len(doc) > 0 and {d["category_id"] for d in doc} <= {0, 1, 2}
    capsys.readouterr()
    assert main(["bench", str(out), "--backend", "onnxruntime,openvino", "--runs", "2", "--warmup", "1",
                 "--imgsz", "320"]) == 0
    printed = capsys.readouterr().out
    assert "[onnxruntime (CPUExecutionProvider)] /" in printed and "[openvino " in printed and "x, inference p50" in printed


def test_openvino_backend_never_imports_torch(ir):
    r = run_without_torch(textwrap.dedent(f"""
        import yolor_deploy.runtime as rt
        det = rt.Detector({str(ir["static"].openvino_paths[0])!r})
        (res,) = det([{images()[0]!r}])
        assert det.backend.name.startswith("openvino") and len(res) > 0, "no detections"
    """))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_verify_openvino_without_ir_still_works(model, tmp_path):
    res = export_onnx(model, tmp_path / "v.onnx", imgsz=(256, 256), verify_openvino=True, nms="onnx", simplify=False)
    assert res.openvino_paths is None and res.report.nms_openvino.passed
    assert any(c.name.startswith("openvino ") for c in res.report.cases)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.onnx"]
    assert Path(res.path).exists()
