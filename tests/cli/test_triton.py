"""`yolor-deploy triton`: the written config.pbtxt parses as Triton's own `ModelConfig` (the protobuf shipped in
tritonclient), its dims match the ONNX / IR graph for dynamic, static and NMS models, our metadata travels as
parameters, and the entry is written atomically (an existing one refused without --force)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("tritonclient.grpc")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2  # noqa: E402

from helpers.serve_server import trained_onnx  # noqa: E402
from yolor_deploy.cli.main import main  # noqa: E402
from yolor_deploy.runtime import Detector  # noqa: E402

TYPES = {1: "TYPE_FP32", 6: "TYPE_INT32", 7: "TYPE_INT64", 10: "TYPE_FP16"}


@pytest.fixture(scope="module")
def nms_model(tmp_path_factory) -> Path:
    from yolor_deploy.assets import trained_checkpoint
    from yolor_deploy.export import export_onnx

    out = tmp_path_factory.mktemp("nms") / "shapes-nms.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(trained_checkpoint(), out, imgsz=(256, 256), nms="onnx", openvino=True, verify=False)
    return out


def _write(model: Path, repo: Path, *args: str) -> model_config_pb2.ModelConfig:
    assert main(["triton", str(model), "--out", str(repo), *args]) == 0
    name = next((args[i + 1] for i, a in enumerate(args) if a == "--name"), model.stem)
    text = (repo / name / "config.pbtxt").read_text(encoding="utf-8")
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _graph(model: Path) -> list[tuple[str, str, list[int]]]:
    g = onnx.load(str(model)).graph
    return [(v.name, TYPES[v.type.tensor_type.elem_type],
             [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim])
            for v in [*g.input, *g.output]]


def _config_io(c: model_config_pb2.ModelConfig) -> list[tuple[str, str, list[int]]]:
    batch = [-1] if c.max_batch_size else []
    return [(t.name, model_config_pb2.DataType.Name(t.data_type), batch + list(t.dims)) for t in [*c.input, *c.output]]


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "static"])
def test_onnx_entry_parses_and_matches_the_graph(tmp_path, dynamic):
    model = trained_onnx(dynamic)
    c = _write(model, tmp_path / "repo", "--max-batch", "16")
    assert c.name == model.stem and c.platform == "onnxruntime_onnx" and c.backend == "onnxruntime"
    assert _config_io(c) == _graph(model)
    assert c.max_batch_size == (16 if dynamic else 0) and c.HasField("dynamic_batching") == dynamic
    assert [(g.count, model_config_pb2.ModelInstanceGroup.Kind.Name(g.kind)) for g in c.instance_group] == \
        [(1, "KIND_CPU")]
    meta = json.loads(c.parameters["yolor_metadata"].string_value)
    assert meta["names"] == ["circle", "square", "triangle"] and json.loads(c.parameters["strides"].string_value)
    assert json.loads(c.parameters["letterbox"].string_value)["pad_to_multiple"] == (64 if dynamic else None)
    assert (tmp_path / "repo" / model.stem / "1" / "model.onnx").read_bytes() == model.read_bytes()
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == [model.stem]  # no temp folder left


def test_nms_model_onnx_and_ir(tmp_path, nms_model):
    c = _write(nms_model, tmp_path / "repo", "--name", "nms")
    assert _config_io(c) == _graph(nms_model)
    assert [t.name for t in c.output] == ["num_dets", "boxes", "scores", "classes"]
    assert json.loads(c.parameters["nms"].string_value)["mode"] == "onnx"
    xml = nms_model.with_suffix(".xml")
    ir = _write(xml, tmp_path / "repo", "--name", "nms-ir")
    assert ir.backend == "openvino" and not ir.platform
    assert [(n, t) for n, t, _ in _config_io(ir)] == [(n, t) for n, t, _ in _config_io(c)]
    folder = tmp_path / "repo" / "nms-ir" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["model.bin", "model.xml"]
    assert (folder / "model.bin").read_bytes() == xml.with_suffix(".bin").read_bytes()
    det = Detector(folder / "model.xml")  # the copied pair still runs, metadata and all
    assert det.metadata.nms.mode == "onnx" and det(np.zeros((64, 64, 3), np.uint8))[0].scores.shape == (0,)


def test_existing_entry_refused_without_force_and_bad_input(tmp_path, capsys):
    model = trained_onnx(True)
    repo = tmp_path / "repo"
    _write(model, repo)
    config = repo / model.stem / "config.pbtxt"
    config.write_text("mine", encoding="utf-8")
    assert main(["triton", str(model), "--out", str(repo)]) == 2
    assert "exists and is not empty (--force replaces it)" in capsys.readouterr().err
    assert config.read_text(encoding="utf-8") == "mine"
    _write(model, repo, "--force")
    assert config.read_text(encoding="utf-8") != "mine"
    assert sorted(p.name for p in repo.iterdir()) == [model.stem]
    assert main(["triton", str(tmp_path / "none.onnx"), "--out", str(repo)]) == 2
    assert "no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    assert main(["triton", str(junk), "--out", str(repo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.onnx" in err[0]
    assert not (repo / "junk").exists()
    assert main(["triton", str(model), "--out", str(repo), "--name", "../x"]) == 2


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["triton", "--help"])
    assert e.value.code == 0 and "example" in capsys.readouterr().out
