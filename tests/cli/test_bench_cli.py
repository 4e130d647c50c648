"""`yolor-deploy bench`: per-stage split, two models in one run, JSON numbers, bad arguments."""
from __future__ import annotations

import json

import cv2

from helpers.runtime_data import horses
from helpers.runtime_models import model_path, tiny_module
from yolor_deploy.cli.main import main


def test_bench_prints_stage_split_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(model_path("dynamic")), "--imgsz", "320", "--runs", "3", "--warmup", "1",
                 "--batch", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("pre", "infer", "post", "total", "p50", "p90", "p99", "throughput", "% of inference"):
        assert word in text
    doc = json.loads(out.read_text())
    (m,) = doc["models"]
    assert m["input"] == [2, 3, 192, 320]  # synthetic 1280x720 at 320: 320x180 padded to x64
    assert set(m["stages_ms"]) == {"pre", "infer", "post", "total"}
    assert all(m["stages_ms"][s]["p50"] > 0 for s in ("pre", "infer", "post"))
    assert m["stages_ms"]["total"]["p50"] >= m["stages_ms"]["infer"]["p50"]
    assert doc["runs"] == 3 and m["throughput_img_s"] > 0


def test_bench_two_models_gives_a_ratio(tmp_path, capsys, monkeypatch):
    """A checkpoint and an ONNX model in the same run (the checkpoint: our tiny module saved whole,
    loaded through a stand-in for yolor_deploy.checkpoint.load_checkpoint)."""
    import torch

    import yolor_deploy.runtime.torch_backend as bt

    ckpt = tmp_path / "tiny.pt"
    torch.save({"state": tiny_module().state_dict()}, ckpt)
    monkeypatch.setattr(bt.TorchBackend, "_load", staticmethod(lambda path, cfg: tiny_module()))
    img = tmp_path / "h.jpg"
    cv2.imwrite(str(img), horses())
    assert main(["bench", str(ckpt), str(model_path("dynamic")), "--imgsz", "320", "--runs", "2",
                 "--warmup", "1", "--image", str(img), "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "pytorch" in text and "onnxruntime" in text
    assert (f"ratio {ckpt} [pytorch {torch.__version__} (cpu)] / {model_path('dynamic')} "
            f"[onnxruntime (CPUExecutionProvider)]: total p50") in text.replace("\n", "")


def test_bench_bad_arguments(tmp_path, capsys):
    assert main(["bench", str(model_path("static")), "--runs", "0"]) == 2
    assert "error: --runs and --batch must be >= 1" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "none.onnx")]) == 2
    assert "none.onnx: no such model file" in capsys.readouterr().err
