"""The issue's bar for label-free `optimize`: without labels, on the bundled trained model, it picks a candidate
faster than fp32, and that candidate's mAP drop measured afterwards WITH the labels is within the budget."""
from __future__ import annotations

import contextlib
import io
import json

import pytest

from yolor_deploy.assets import trained_checkpoint, val_images, val_labels
from yolor_deploy.cli.main import main
from yolor_deploy.eval import evaluate
from yolor_deploy.export import export_onnx
from yolor_deploy.optimize.candidates import REFERENCE
from yolor_deploy.runtime import Detector

BUDGET = 0.5


@pytest.mark.slow
def test_without_labels_the_pick_is_faster_and_within_budget_against_labels(tmp_path):
    fp32 = tmp_path / "shapes-256.onnx"
    export_onnx(str(trained_checkpoint()), fp32, imgsz=(256, 256), opset=17, verify=False)
    out = tmp_path / "opt"
    # p50 over 15 interleaved rounds (each a few ms here): a busy CI worker beside this one must not invert the
    # ~1.5x gap the pick rests on (speed is never asserted beyond "faster than fp32")
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["optimize", str(fp32), "--calib", str(val_images()), "--max-map-drop", str(BUDGET),
                   "--out", str(out), "--runs", "15", "--warmup", "2", "--threads", "2", "--calib-size", "8"])
    assert rc == 0
    doc = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in doc["rows"]}
    chosen = next(r for r in doc["rows"] if r["chosen"])
    print(f"picked without labels: {chosen['name']} ({chosen['precision']}), p50 {chosen['p50']:.1f} ms vs fp32 "
          f"{rows[REFERENCE]['p50']:.1f} ms; agreement drop {chosen['drop']:.2f} "
          f"({chosen['drop_lo']:.2f}..{chosen['drop_hi']:.2f})")
    assert chosen["name"] != REFERENCE and chosen["p50"] < rows[REFERENCE]["p50"]
    assert chosen["drop_hi"] <= BUDGET
    if rows["ov-int8"]["status"] == "ok" and rows["ov-int8"]["drop_hi"] <= BUDGET:  # the guarded one is not built
        assert rows["ov-int8-acc"]["status"] == "skipped"
        assert rows["ov-int8-acc"]["reason"] == "not needed: plain int8 (ov-int8) is within the budget"

    ref = evaluate(Detector(fp32, conf_thres=0.001, iou_thres=0.65), val_images(), val_labels())
    best = evaluate(Detector(out / doc["best"]["file"], conf_thres=0.001, iou_thres=0.65), val_images(), val_labels())
    drop = 100 * (ref.map - best.map)
    print(f"with labels afterwards: fp32 mAP {ref.map:.4f}, {chosen['name']} {best.map:.4f}: drop {drop:+.2f} points")
    assert drop <= BUDGET
