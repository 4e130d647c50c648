"""`yolor-deploy verify`: models from any exporter; exit 0 faithful, 1 not, 3 nothing checked."""
from __future__ import annotations

import shutil

import onnx
import pytest
import torch

from helpers.bug_catalogue import export_with_bug
from helpers.fixtures import fixture_path
from yolor_deploy.checkpoint import load_checkpoint, save_checkpoint
from yolor_deploy.cli.main import main
from yolor_deploy.export import export_onnx
from yolor_deploy.verify.exported import verify_file

TRAINED = "trained/shapes-ssss-w025"


@pytest.fixture(scope="module")
def trained():
    return fixture_path(f"{TRAINED}.pt"), load_checkpoint(fixture_path(f"{TRAINED}.pt"))


class HandWritten(torch.nn.Module):
    """Someone else's exporter: unfolded BN and implicit layers, its own decode (meshgrid, slices, no
    in-place writes), another output name, opset 13, no metadata."""

    def __init__(self, model):
        super().__init__()
        self.m, self.strides = model, [float(s) for s in model.strides]
        self.register_buffer("anchors", model.anchors_px().float())

    def forward(self, x):
        outs = []
        na, no = self.m.na, self.m.no
        for i, p in enumerate(self.m.head_maps(x)):
            b, _, ny, nx = p.shape
            p = p.view(b, na, no, ny, nx).permute(0, 1, 3, 4, 2).sigmoid()
            gy, gx = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            grid = torch.stack((gx, gy), -1).view(1, 1, ny, nx, 2).float()
            xy = (p[..., :2] * 2 - 0.5 + grid) * self.strides[i]
            wh = (p[..., 2:4] * 2) ** 2 * self.anchors[i].view(1, na, 1, 1, 2)
            outs.append(torch.cat((xy, wh, p[..., 4:]), -1).reshape(b, -1, no))
        return torch.cat(outs, 1)


class HeadMapsOnly(torch.nn.Module):
    """Upstream's IDetect export (`self.training |= self.export`): raw head maps, no decode."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x):
        return tuple(self.m.head_maps(x))


def _export(module, path, outputs):
    with torch.no_grad():
        torch.onnx.export(module.eval(), (torch.zeros(1, 3, 320, 320),), str(path), opset_version=13, dynamo=False,
                          input_names=["images"], output_names=outputs)


def test_our_export_is_faithful(trained, tmp_path, capsys):
    ckpt, model = trained
    out = tmp_path / "m.onnx"
    export_onnx(model, out, imgsz=(320, 320), verify=False)
    assert main(["verify", str(ckpt), str(out), "--report", str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    assert "faithful" in text and "FAIL" not in text
    assert '"status": "ok"' in (tmp_path / "r.json").read_text()


def test_another_exporters_correct_model_is_faithful(trained, tmp_path, capsys):
    ckpt, model = trained
    out = tmp_path / "theirs.onnx"
    _export(HandWritten(model.clone().float().eval()), out, ["pred"])
    assert not onnx.load(str(out)).metadata_props
    rep = verify_file(model, out, image=fixture_path("horses.jpg"))
    assert rep.passed and rep.checked and rep.max_ratio < 1.0 and len(rep.cases) == 2
    assert main(["verify", str(ckpt), str(out)]) == 0


def test_broken_model_is_not_faithful(trained, tmp_path, capsys):
    ckpt, model = trained
    out = tmp_path / "bad.onnx"
    onnx.save(export_with_bug(model, "wh off by 0.5%", (320, 320)), str(out))
    assert main(["verify", str(ckpt), str(out)]) == 1
    text = capsys.readouterr().out
    assert "NOT FAITHFUL" in text and "wh p50 err" in text and f"yolor-deploy diff {ckpt} {out}" in text


def test_head_maps_only_export_is_not_faithful(trained, tmp_path, capsys):
    ckpt, model = trained
    out = tmp_path / "upstream.onnx"
    _export(HeadMapsOnly(model.clone().float().eval()), out, ["p3", "p4", "p5"])
    assert main(["verify", str(ckpt), str(out)]) == 1
    assert "no decoded output [B, N, 8]" in capsys.readouterr().out


def test_half_is_judged_on_detections(trained, tmp_path, capsys):
    ckpt, model = trained
    out = tmp_path / "h.onnx"
    export_onnx(model, out, imgsz=(320, 320), half=True, verify=False)
    rep = verify_file(model, out)  # the bundled sample image: shapes with boxes on every object
    image = rep.cases[0]
    assert rep.half and not image.groups and image.status == "ok" and image.detections.total >= 5
    assert image.detections.rate >= 0.8
    assert main(["verify", str(ckpt), str(out)]) == 0
    text = capsys.readouterr().out
    assert "judged on detections" in text


def test_half_with_no_detections_is_not_checked(tmp_path, capsys):
    ckpt = fixture_path("paper-p6-tiny.pt")  # random weights: max obj*cls 0.12 < 0.25 at 320
    out = tmp_path / "h.onnx"
    export_onnx(load_checkpoint(ckpt), out, imgsz=(320, 320), half=True, verify=False)
    assert main(["verify", str(ckpt), str(out), "--image", str(fixture_path("horses.jpg"))]) == 3
    text = capsys.readouterr().out
    assert "no detections on either side" in text and "INCONCLUSIVE" in text


def test_input_independent_model_is_not_checked(tmp_path, capsys):
    model = load_checkpoint(fixture_path("paper-p6-tiny.pt"))
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        first.weight.zero_()  # the network no longer sees its input
    ckpt = save_checkpoint(model, tmp_path / "blind.pt")
    res = export_onnx(model, tmp_path / "blind.onnx", imgsz=(256, 256))
    assert res.report.passed and not res.report.checked and res.report.status == "not checked"
    assert all("does not depend on the input" in c.reason for c in res.report.cases)
    assert main(["verify", str(ckpt), str(tmp_path / "blind.onnx")]) == 3


def test_export_names_the_file_by_its_real_size(tmp_path, capsys):
    ckpt = tmp_path / "p6.pt"
    shutil.copy(fixture_path("paper-p6-tiny.pt"), ckpt)
    assert main(["export", str(ckpt), "--imgsz", "300", "--no-verify"]) == 0
    assert "using 320x320" in capsys.readouterr().out
    assert [p.name for p in tmp_path.glob("*.onnx")] == ["p6-320x320.onnx"]
    shape = [d.dim_value for d in onnx.load(str(tmp_path / "p6-320x320.onnx")).graph.input[0].type.tensor_type.shape.dim]
    assert shape == [1, 3, 320, 320]


def test_verify_openvino_ir(trained, tmp_path):
    ckpt, model = trained
    res = export_onnx(model, tmp_path / "m.onnx", imgsz=(320, 320), openvino=True, nms="onnx", verify=False)
    xml = res.openvino_paths[0]
    rep = verify_file(model, xml)
    assert rep.passed and rep.checked and all(c.detections.total > 0 for c in rep.cases if c.status == "ok")
    assert main(["verify", str(ckpt), str(xml)]) == 0


def test_verify_bad_inputs_are_one_line_errors(trained, tmp_path, capsys):
    ckpt, _ = trained
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert main(["verify", str(ckpt), str(tmp_path / "junk.onnx")]) == 2
    assert main(["verify", str(ckpt), str(tmp_path / "missing.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: ") and "not an ONNX model" in err[0]
    assert "no such model file" in err[1]


def test_demo_detects_real_objects_with_a_conclusive_verification(tmp_path):
    import json

    assert main(["demo", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "verify-report.json").read_text())
    assert report["status"] == "ok" and report["passed"] and report["max_ratio"] < 1.0
    assert all(c["status"] == "ok" and c["detections"]["total"] > 0 for c in report["cases"])
    preds = json.loads((tmp_path / "predict" / "predictions.json").read_text())
    assert {p["image_id"] for p in preds} >= {"shapes", 0, 19} and {p["category_id"] for p in preds} == {0, 1, 2}
    assert len({p["image_id"] for p in preds}) == 21  # boxes on the sample image and on all 20 labelled ones
    metrics = json.loads((tmp_path / "val.json").read_text())
    assert metrics["images"] == 20 and metrics["map50"] >= 0.9 and metrics["map"] >= 0.7
    assert (tmp_path / "shapes-ssss-w025-320x320.onnx").is_file() and (tmp_path / "predict" / "shapes.jpg").is_file()
