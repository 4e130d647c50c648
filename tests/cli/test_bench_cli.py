"""`yolor-deploy bench`: per-stage split, two models in one run, JSON numbers, bad arguments."""
from __future__ import annotations

import json

from helpers.runtime_models import model_path
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


def test_bench_two_models_gives_a_ratio(tmp_path, capsys):
    """A checkpoint (the bundled trained YOLOR, loaded by the torch backend's real loader) and its ONNX export in
    the same run."""
    import torch

    from helpers.trained_onnx import trained_onnx
    from yolor_deploy.assets import sample_image, trained_checkpoint

    ckpt, onnx_model = trained_checkpoint(), trained_onnx()
    out = tmp_path / "bench.json"
    assert main(["bench", str(ckpt), str(onnx_model), "--imgsz", "256", "--runs", "2", "--warmup", "1",
                 "--image", str(sample_image()), "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pytorch" in text and "onnxruntime" in text
    assert (f"ratio {ckpt} [pytorch {torch.__version__} (cpu)] / {onnx_model} "
            f"[onnxruntime (CPUExecutionProvider)]: total p50") in text.replace("\n", "")
    models = json.loads(out.read_text())["models"]
    assert [m["input"] for m in models] == [[1, 3, 192, 256]] * 2  # 640x480 at 256, padded to x64
    assert all(m["stages_ms"]["infer"]["p50"] > 0 for m in models)


def test_bench_bad_arguments(tmp_path, capsys):
    assert main(["bench", str(model_path("static")), "--runs", "0"]) == 2
    assert "error: --runs and --batch must be >= 1" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "none.onnx")]) == 2
    assert "none.onnx: no such model file" in capsys.readouterr().err
