"""`diff`: per-layer ONNX vs PyTorch on real exports of the fixtures, correct and deliberately broken."""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from helpers.fixtures import fixture_path, main_cfg
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.cli.main import main
from yolor_deploy.export.onnx_export import export_onnx
from yolor_deploy.verify.diff_report import summary_lines
from yolor_deploy.verify.layer_diff import LayerDiff, diff_layers, first_divergence, layer_tensors, scope_index

IMGSZ = (192, 192)  # small: the fixtures are well conditioned at any size


def _input() -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, *IMGSZ), dtype=np.float32)


def _export(model, path, **kw):
    export_onnx(model, path, imgsz=IMGSZ, verify=False, **kw)
    return path


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    ckpt = fixture_path("paper-p6-tiny.pt")
    model = load_checkpoint(ckpt)
    return ckpt, model, _export(model, tmp_path_factory.mktemp("paper") / "p6.onnx")


@pytest.fixture(scope="module")
def main_csp(tmp_path_factory):
    ckpt, cfg = fixture_path("main-csp-tiny.pt"), main_cfg("main-csp-tiny")
    return ckpt, cfg, load_checkpoint(ckpt, cfg=cfg), tmp_path_factory.mktemp("main")


def test_scope_index_reads_the_top_level_layer():
    assert scope_index("/model.3/cv1/conv/Conv", "model") == 3
    assert scope_index("/model/model.41/m.3/Conv", "model") == 41  # under a wrapper scope
    assert scope_index("/module_list.12/Conv2d/Conv", "module_list") == 12
    assert scope_index("/decode/Concat_16", "model") is None
    assert scope_index("/model.41/m.3/Conv", "module_list") is None


def test_scopes_survive_onnxslim(paper):
    _, model, path = paper
    tensors = layer_tensors(onnx.load(str(path)).graph, "model")
    assert sorted(tensors) == list(range(len(model.model)))  # every paper layer keeps a named node
    assert len(tensors[41]) == 4  # IDetect: one folded 1x1 conv per level


def test_correct_paper_export_has_no_divergence(paper):
    _, model, path = paper
    rows = diff_layers(model, path, _input())
    assert first_divergence(rows) is None
    assert {r.status for r in rows} == {"ok"}, [(r.label, r.status) for r in rows if r.status != "ok"]
    assert [r.label for r in rows[-5:]] == ["41[0]", "41[1]", "41[2]", "41[3]", "output"]
    assert all(r.err <= r.tolerance for r in rows)


def test_conv_weight_scaled_in_layer_5_diverges_first_at_layer_5(paper):
    _, model, path = paper
    proto = onnx.load(str(path))
    conv = next(n for n in proto.graph.node if scope_index(n.name, "model") == 5 and n.op_type == "Conv")
    w = next(t for t in proto.graph.initializer if t.name == conv.input[1])
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.5, w.name))
    rows = diff_layers(model, proto, _input())
    first = first_divergence(rows)
    assert (first.index, first.type) == (5, "BottleneckCSPF")
    assert all(r.status == "ok" for r in rows if r.index is not None and r.index < 5)
    assert first.err > 100 * first.tolerance and rows[-1].diverged


def test_correct_main_export_has_no_divergence(main_csp):
    _, _, model, tmp = main_csp
    rows = diff_layers(model, _export(model, tmp / "ok.onnx"), _input())
    assert first_divergence(rows) is None
    by_status = {s: {r.type for r in rows if r.status == s} for s in ("folded", "skipped")}
    # the head's implicit shift/control layers are folded into the conv between them: expected there only
    assert by_status["folded"] == {"shift_channels", "convolutional"}
    assert all(rows[k + 1].type == "control_channels" for k, r in enumerate(rows) if r.status == "folded"
               and r.type == "convolutional")
    assert by_status["skipped"] == {"implicit_add", "implicit_mul"}  # constants: initializers, no node
    yolo = [r for r in rows if r.type == "yolo"]
    assert len(yolo) == 3 and all(r.status == "ok" and "no node of its own" in r.note for r in yolo)


def test_cli_finds_bn_eps_changed_before_export(main_csp, capsys):
    ckpt, cfg, model, tmp = main_csp
    broken = model.clone()
    broken.module_list[5].BatchNorm2d.eps = 0.5
    path = _export(broken, tmp / "eps.onnx")
    out_json = tmp / "diff.json"
    rc = main(["diff", str(ckpt), str(path), "--cfg", str(cfg), "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "first divergence: layer 5 (convolutional)" in out
    doc = json.loads(out_json.read_text())
    assert doc["first_divergence"]["index"] == 5 and doc["first_divergence"]["status"] == "DIVERGED"
    assert doc["input_shape"] == [1, 3, *IMGSZ]
    assert [r["status"] for r in doc["layers"][:5]] == ["ok"] * 5
    skipped = [r for r in doc["layers"] if r["status"] == "skipped"]
    assert skipped and all(r["max_abs"] is None for r in skipped)  # NaN written as null


def test_cli_no_divergence_on_an_image_exits_0(paper, capsys):
    ckpt, _, path = paper
    assert main(["diff", str(ckpt), str(path), "--image", str(fixture_path("horses.jpg"))]) == 0
    out = capsys.readouterr().out
    assert "no divergence" in out and "horses.jpg (letterboxed)" in out


@pytest.mark.parametrize("extra, message", [
    (["--imgsz", "256"], "static input of 192x192"),
    (["--image", "missing.jpg"], "missing.jpg: no such file"),
])
def test_cli_errors_are_one_line(paper, capsys, extra, message):
    ckpt, _, path = paper
    assert main(["diff", str(ckpt), str(path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_cli_missing_model_file(paper, tmp_path, capsys):
    ckpt, _, _ = paper
    assert main(["diff", str(ckpt), str(tmp_path / "none.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err


def _row(index, status, type_="Conv"):
    nan = math.nan
    return LayerDiff(index, None, type_, (1,), (1,), "t", nan, nan, 1.0, 1.0, status)


def test_summary_points_at_the_folds_when_only_the_output_diverges():
    rows = [_row(0, "ok"), _row(1, "folded", "BottleneckCSP"), _row(2, "folded"), _row(None, "DIVERGED", "decode")]
    lines = summary_lines(rows)
    assert "first divergence: the decoded output" in lines[1]
    assert "departs from the checkpoint is 1 (BottleneckCSP)" in lines[2]
    assert len(summary_lines(rows[:-1])) == 2 and "no divergence" in summary_lines(rows[:-1])[1]
