"""How a model runs comes from the model itself: `--backend auto` follows the runtime hint in its own metadata
(`contract.RuntimeHint`, what `optimize` writes into `best.*`) and never reads files beside it; an optimize
`report.json` counts only when named (`--hint REPORT`, `hint=` in Python)."""
from __future__ import annotations

import json
import shutil

import onnx
import pytest

from helpers.trained_onnx import trained_onnx
from yolor_deploy.assets import val_images, val_labels
from yolor_deploy.cli.main import main
from yolor_deploy.contract import RuntimeHint
from yolor_deploy.formats.onnx_meta import get_metadata, set_metadata
from yolor_deploy.runtime import Detector, read_report_hint

OPENVINO_1_THREAD = {"backend": "openvino", "precision": "f32", "threads": 1}


def report(file: str, runtime: dict) -> str:
    """An optimize report as `optimize` writes it (the fields the runtime could read)."""
    return json.dumps({"tool": "yolor-deploy optimize", "best": {"file": file, "runtime": runtime}, "rows": []})


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.onnx"
    shutil.copy(trained_onnx(), path)
    return path


def test_a_stray_report_beside_the_model_changes_nothing(model, capsys):
    (model.parent / "report.json").write_text(report("m.onnx", OPENVINO_1_THREAD))
    assert Detector(model).backend.name.startswith("onnxruntime")
    assert main(["val", str(model), "--images", str(val_images()), "--labels", str(val_labels())]) == 0
    assert "backend: onnxruntime" in capsys.readouterr().out
    # not even a malformed one is read
    (model.parent / "report.json").write_text(report("m.onnx", {"backend": "openvino", "precision": "int4"}))
    assert Detector(model).backend.name.startswith("onnxruntime")


def test_a_named_report_is_followed_and_checked(model, tmp_path, capsys):
    rep = tmp_path / "elsewhere.json"  # any name, anywhere: the caller names it
    rep.write_text(report("m.onnx", OPENVINO_1_THREAD))
    hint = read_report_hint(rep, model)
    assert hint == RuntimeHint("openvino", "f32", 1)
    det = Detector(model, hint=hint)
    assert det.backend.name.startswith("openvino")
    assert Detector(model, hint=hint, backend="onnxruntime").backend.name.startswith("onnxruntime")  # explicit wins
    assert main(["val", str(model), "--images", str(val_images()), "--labels", str(val_labels()),
                 "--hint", str(rep)]) == 0
    assert "backend: openvino" in capsys.readouterr().out
    for text, message in [
        (report("other.xml", {}), f"{rep}: the report's best model is 'other.xml', not 'm.onnx'"),
        (report("m.onnx", {"backend": "openvino", "precision": "int4"}),
         f"{rep}: malformed optimize report (runtime.precision 'int4'"),
        (json.dumps({"best": {"file": "m.onnx"}}), f"{rep}: not an optimize report"),
    ]:
        rep.write_text(text)
        assert main(["predict", str(model), str(val_images()), "--save-dir", str(tmp_path / "p"), "-q",
                     "--hint", str(rep)]) == 2
        assert message in one_line_error(capsys.readouterr().err)


def test_auto_follows_the_models_own_metadata(model):
    proto = onnx.load(str(model))
    meta = get_metadata(proto).replace(runtime=RuntimeHint(**OPENVINO_1_THREAD))
    onnx.save(set_metadata(proto, meta), str(model))
    det = Detector(model)
    assert det.backend.name.startswith("openvino") and det.metadata.runtime == RuntimeHint(**OPENVINO_1_THREAD)
    assert Detector(model, backend="onnxruntime").backend.name.startswith("onnxruntime")
