"""`yolor-deploy optimize` on the bundled trained shapes model at 256 (20 labelled images).

Two real runs through the CLI (ONNX Runtime and OpenVINO, real calibration, real mAP):
- with labels, every candidate of this machine: a table, report.json with one row per candidate,
  report.png, and best.* that `Detector` runs with the same mAP as the report says;
- without labels, on an opset-12 export (ORT int8 needs opset 13: those rows fail with the reason)
  and a budget of 0: agreement with fp32's detections, and an fp32-exact choice.
Speed is never asserted here (scripts/bench_optimize.py prints it).
"""
from __future__ import annotations

import json

import pytest

from yolor_deploy.assets import trained_checkpoint, val_images, val_labels
from yolor_deploy.cli.main import main
from yolor_deploy.eval import evaluate
from yolor_deploy.export import export_onnx
from yolor_deploy.optimize.candidates import CANDIDATES, REFERENCE, plan_candidates
from yolor_deploy.optimize.guarded import NAME as GUARDED
from yolor_deploy.optimize.guarded import PLAIN
from yolor_deploy.optimize.machine import detect_machine
from yolor_deploy.runtime import Detector

IMGSZ = (256, 256)
FAST = ["--runs", "2", "--warmup", "1", "--threads", "2", "--calib-size", "8"]


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("opt-models")
    paths = {"fp32": d / "shapes-256.onnx", "opset12": d / "shapes-256-op12.onnx"}
    export_onnx(str(trained_checkpoint()), paths["fp32"], imgsz=IMGSZ, opset=17, verify=False)
    export_onnx(str(trained_checkpoint()), paths["opset12"], imgsz=IMGSZ, opset=12, verify=False)
    return paths


@pytest.fixture(scope="module")
def labelled(exports, tmp_path_factory):
    out = tmp_path_factory.mktemp("opt-labelled")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["optimize", str(exports["fp32"]), "--calib", str(val_images()), "--val-images", str(val_images()),
                   "--val-labels", str(val_labels()), "--out", str(out), *FAST])
    return {"rc": rc, "out": out, "text": buf.getvalue(), "doc": json.loads((out / "report.json").read_text())}


@pytest.fixture(scope="module")
def unlabelled(exports, tmp_path_factory):
    out = tmp_path_factory.mktemp("opt-unlabelled")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["optimize", str(exports["opset12"]), "--calib", str(val_images()), "--max-map-drop", "0",
                   "--out", str(out), "--throughput", "--streams", "2", *FAST])
    return {"rc": rc, "out": out, "text": buf.getvalue(), "doc": json.loads((out / "report.json").read_text())}


def best_path(run) -> object:
    return run["out"] / run["doc"]["best"]["file"]


# --- with labels ----------------------------------------------------------------------------------
def test_labelled_run_writes_table_report_chart_and_best(labelled):
    assert labelled["rc"] == 0
    doc, text = labelled["doc"], labelled["text"]
    names = [r["name"] for r in doc["rows"]]
    assert names == [c.name for c in CANDIDATES]  # one row per candidate, failed or skipped ones included
    for name in names:
        assert name in text
    assert "chosen:" in text and doc["best"]["candidate"] in text
    rows = {r["name"]: r for r in doc["rows"]}
    ref = rows[REFERENCE]
    assert ref["status"] == "ok" and ref["drop"] == 0 and ref["speedup"] == 1.0
    assert 0.9 < ref["map50"] <= 1 and 0.7 < ref["map"] < 0.8  # fp32: 0.957 / 0.746 on these 20 images
    assert rows["ort-fp16-cuda"]["status"] == "skipped" and "GPU" in rows["ort-fp16-cuda"]["reason"]
    # every candidate this machine can run builds, times and scores; a skip names what the machine lacks
    machine = detect_machine()
    for spec, why_not in plan_candidates(machine):
        row = rows[spec.name]
        if why_not is None and spec.name == GUARDED:  # built only when plain int8 misses the budget
            plain_fits = rows[PLAIN]["status"] == "ok" and rows[PLAIN]["drop_hi"] <= 0.5
            assert (row["status"], row["reason"]) == (("skipped", "not needed: plain int8 (ov-int8) is within the "
                                                        "budget") if plain_fits else ("ok", "")), row
        elif why_not is None:
            assert row["status"] == "ok", (spec.name, row["reason"])
        else:
            assert row["status"] == "skipped" and row["reason"] == why_not, (spec.name, row)
            assert any(not machine.has(n) and machine.why_not(n) == why_not for n in spec.needs), spec.name
    assert {r["status"] for r in doc["rows"]} <= {"ok", "skipped"}
    ok = [r for r in doc["rows"] if r["status"] == "ok"]
    assert len(ok) >= 3 and all(r["p50"] > 0 and r["p90"] >= r["p50"] and r["map"] > 0.5 for r in ok)
    assert {r["precision"] for r in ok} >= {"fp32", "int8"}
    (chosen,) = [r for r in doc["rows"] if r["chosen"]]
    assert chosen["drop"] <= 0.5 and chosen["within_budget"] and chosen["drop_hi"] <= 0.5
    assert all(r["p50"] >= chosen["p50"] for r in ok if r["within_budget"])  # the fastest within budget
    assert any(r["pareto"] for r in ok)
    # the pick is on the front, or what beats it there is faster but not proven within budget (its interval)
    assert chosen["pareto"] or all(not r["within_budget"] for r in ok if r["p50"] < chosen["p50"])
    png = (labelled["out"] / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert not [p for p in labelled["out"].iterdir() if p.name.startswith(".")]  # no work files left


def test_best_model_runs_as_measured_with_the_reported_map(labelled):
    doc = labelled["doc"]
    best = best_path(labelled)
    det = Detector(best, conf_thres=0.001, iou_thres=0.65)
    hint = det.metadata.runtime
    assert hint is not None and hint.to_dict() == doc["best"]["runtime"]
    assert det.backend.name.startswith(hint.backend)
    if hint.backend == "openvino":
        assert det.backend.precision == hint.precision
    m = evaluate(det, val_images(), val_labels())
    assert m.map == pytest.approx(doc["best"]["map"], abs=1e-6)
    assert m.map50 == pytest.approx(doc["best"]["map50"], abs=1e-6)
    chosen = next(r for r in doc["rows"] if r["chosen"])
    assert int(m.detections.sum()) == chosen["detections"]


# --- without labels, a failing candidate, budget 0 --------------------------------------------------
def test_unlabelled_run_measures_agreement_and_reports_failures(unlabelled):
    assert unlabelled["rc"] == 0
    doc = unlabelled["doc"]
    assert doc["accuracy"]["labelled"] is False and doc["accuracy"]["score"] == "map50"
    assert doc["accuracy"]["metric"].startswith("agreement: AP@0.5")
    rows = {r["name"]: r for r in doc["rows"]}
    assert rows[REFERENCE]["map"] == 1.0 and rows[REFERENCE]["map50"] == 1.0  # fp32 against itself
    assert rows[REFERENCE]["drop_lo"] == rows[REFERENCE]["drop_hi"] == 0
    for r in rows.values():  # every measured drop carries its bootstrap interval around it
        if r["status"] == "ok" and r["name"] != REFERENCE:
            assert r["score"] == r["map50"] and r["drop_lo"] <= r["drop"] <= r["drop_hi"]
    for name in ("ort-int8", "ort-int8-pct"):  # opset 12 cannot hold per-channel int8: a row, not a crash
        assert rows[name]["status"] == "failed"
        assert "opset 12 cannot hold per-channel int8" in rows[name]["reason"]
        assert name in unlabelled["text"] and "failed: build" in unlabelled["text"]
    ok = [r for r in doc["rows"] if r["status"] == "ok"]
    assert len(ok) >= 3 and all(0.5 < r["map"] <= 1.0 for r in ok)
    assert any(r["map"] < 1.0 for r in ok if r["precision"].startswith("int8"))  # int8 does move boxes


def test_throughput_columns_measure_both_run_modes(unlabelled):
    """--throughput: every candidate that ran has images/s in latency mode and with 2 calls in flight, in the
    report and the table (speed itself is never asserted: scripts/bench_optimize.py prints it)."""
    doc, text = unlabelled["doc"], unlabelled["text"]
    ok = [r for r in doc["rows"] if r["status"] == "ok"]
    assert doc["timing"]["modes"] and "img/s throughput" in text and "img/s latency" in text
    for r in ok:
        assert r["streams"] == 2 and not r["throughput_error"], r
        assert r["latency_ips"] > 0 and r["throughput_ips"] > 0, r
        # the same backend calls as p50 measures, one at a time: images/s ~ 1000 / p50 (a wide band: shared cores)
        assert 0.2 < r["latency_ips"] * r["p50"] / 1000 < 5, r
    assert all(r["latency_ips"] is None for r in doc["rows"] if r["status"] != "ok")


def test_budget_zero_picks_an_fp32_exact_candidate(unlabelled):
    doc = unlabelled["doc"]
    chosen = next(r for r in doc["rows"] if r["chosen"])
    assert chosen["drop"] == 0 and chosen["map"] == 1.0 and chosen["precision"] == "fp32"
    assert all(not r["within_budget"] for r in doc["rows"] if r["status"] == "ok" and r["map"] < 1.0)
    best = best_path(unlabelled)
    assert best.is_file() and Detector(best).metadata.runtime.backend == chosen["backend"]
    png = (unlabelled["out"] / "report.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000


# --- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--val-labels", "LABELS"], "--val-labels needs --val-images"),
    (["--max-map-drop", "-1"], "--max-map-drop -1: points of mAP@0.5:0.95, 0..100"),
    (["--backends", "tensorrt"], "--backends 'tensorrt': choose from onnxruntime, openvino"),
    (["--candidates", "ort-int4"], "--candidates ort-int4: unknown"),
])
def test_bad_options_are_one_line_errors(exports, tmp_path, capsys, args, message):
    args = [a.replace("LABELS", str(val_labels())) for a in args]
    out = tmp_path / "out"
    rc = main(["optimize", str(exports["fp32"]), "--calib", str(val_images()), "--out", str(out), *args])
    assert rc == 2 and message in error_line(capsys.readouterr().err)
    assert not out.exists() or not list(out.iterdir())


def test_int8_input_and_missing_model_are_refused(exports, tmp_path, capsys):
    from yolor_deploy.quantize import quantize_onnx

    int8 = quantize_onnx(exports["fp32"], tmp_path / "int8.onnx", [val_images()], calib_size=2).path
    assert main(["optimize", str(int8), "--calib", str(val_images()), "--out", str(tmp_path / "o")]) == 2
    assert "already quantized (int8-qdq); quantize the fp32 export" in error_line(capsys.readouterr().err)
    assert main(["optimize", str(tmp_path / "nope.onnx"), "--calib", str(val_images())]) == 2
    assert "nope.onnx: no such model file" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()
