"""`yolor_deploy.eval` and `yolor-deploy val`: COCO mAP from YOLO labels, scored by pycocotools.

Unit tests build ground truth and results by hand (perfect detections score 1.0); the real test
measures the trained fixture (../shared/fixtures/trained, an upstream paper-branch checkpoint) as a
checkpoint and as its dynamic ONNX export, and checks that wrong labels are caught by the numbers.
"""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.fixtures import FIXTURES
from yolor_deploy.cli.main import main
from yolor_deploy.errors import InputError
from yolor_deploy.eval import (
    LabeledImage,
    category_ids,
    coco_evaluate,
    coco_ground_truth,
    evaluate,
    find_labeled_images,
    image_ids,
    read_yolo_labels,
)
from yolor_deploy.runtime import Detector
from yolor_deploy.runtime.results.detections import coco_names

TRAINED = FIXTURES / "trained"
CKPT = TRAINED / "shapes-ssss-w025.pt"
NAMES = ("circle", "square", "triangle")
IMGSZ = 256  # the fixture's training and upstream test size
# upstream test.py on the full 200-image val set at 256: mAP@0.5 0.957, mAP@0.5:0.95 0.757;
# measured here on its 20-image subset: 0.957 / 0.746 (checkpoint and ONNX alike)
MAP50_MIN, MAP_MIN = 0.90, 0.68


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def write_dataset(root: Path, labels: dict[str, str], shape=(60, 80), suffix=".png") -> tuple[Path, Path]:
    """root/images/STEM.png (gray, `shape`) for every key; root/labels/STEM.txt where text is not None."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for stem, text in labels.items():
        cv2.imwrite(str(root / "images" / f"{stem}{suffix}"), np.full((*shape, 3), 100, np.uint8))
        if text is not None:
            (root / "labels" / f"{stem}.txt").write_text(text)
    return root / "images", root / "labels"


# --- labels -------------------------------------------------------------------------------------
def test_read_yolo_labels(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("0 0.5 0.5 0.2 0.4\n\n2 0.1 0.2 0.1 0.1  \n")
    np.testing.assert_array_equal(read_yolo_labels(p, nc=3), [[0, 0.5, 0.5, 0.2, 0.4], [2, 0.1, 0.2, 0.1, 0.1]])
    p.write_text("")
    assert read_yolo_labels(p).shape == (0, 5)


@pytest.mark.parametrize("line, words", [
    ("0 0.5 0.5 0.2", "expected 'cls cx cy w h'"),
    ("0 0.5 0.5 0.2 0.2 0.9", "6 field(s)"),
    ("0 0.5 abc 0.2 0.2", "not a number"),
    ("0 0.5 nan 0.2 0.2", "not a finite number"),
    ("3 0.5 0.5 0.2 0.2", "not a valid class index (the model has 3 classes: 0..2)"),
    ("1.5 0.5 0.5 0.2 0.2", "not a valid class index"),
    ("-1 0.5 0.5 0.2 0.2", "not a valid class index"),
    ("0 0.5 0.5 20 30", "not normalised to [0, 1]"),
    ("0 0.5 0.5 -0.1 0.2", "not normalised to [0, 1]"),
])
def test_malformed_label_line_names_file_and_line(tmp_path, line, words):
    p = tmp_path / "img7.txt"
    p.write_text(f"1 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(InputError) as e:
        read_yolo_labels(p, nc=3)
    msg = str(e.value)
    assert msg.startswith(f"{p}:2: ") and words in msg and "\n" not in msg


def test_pairing_by_stem_and_images_without_labels(tmp_path):
    images, labels = write_dataset(tmp_path, {"b": "1 0.5 0.5 0.5 0.5\n", "a": None, "c": ""})
    (labels / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image: ignored
    (images / "notes.md").write_text("not an image")
    items = find_labeled_images(images, labels, nc=3)
    assert [it.path.name for it in items] == ["a.png", "b.png", "c.png"]
    assert [it.label_path.name if it.label_path else None for it in items] == [None, "b.txt", "c.txt"]
    assert [len(it.labels) for it in items] == [0, 1, 0]


# --- COCO documents and scoring ------------------------------------------------------------------
def _items(labels: list[list[list[float]]]) -> list[LabeledImage]:
    return [LabeledImage(Path(f"{i:03d}.jpg"), None, np.array(lb, np.float64).reshape(-1, 5))
            for i, lb in enumerate(labels)]


def _perfect_results(gt: dict, score: float = 0.9) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": score}
            for a in gt["annotations"]]


def test_ground_truth_document():
    items = _items([[[1, 0.5, 0.5, 0.5, 0.25], [0, 0.05, 0.5, 0.2, 0.2]], []])
    gt = coco_ground_truth(items, [(100, 200), (50, 50)], NAMES)
    assert gt["images"] == [{"id": 0, "file_name": "000.jpg", "width": 200, "height": 100},
                            {"id": 1, "file_name": "001.jpg", "width": 50, "height": 50}]
    a, b = gt["annotations"]
    assert (a["id"], a["image_id"], a["category_id"], a["iscrowd"]) == (1, 0, 1, 0)  # ids from 1 (pycocotools)
    np.testing.assert_allclose(a["bbox"], [50, 37.5, 100, 25])  # xywh px from the top-left corner
    assert a["area"] == pytest.approx(2500)
    np.testing.assert_allclose(b["bbox"], [0, 40, 30, 20])  # clipped at the left edge
    assert [c["name"] for c in gt["categories"]] == list(NAMES)


def test_ids_as_upstream():
    assert image_ids(["x/000123.jpg", "y/7.png"]) == [123, 7]
    assert image_ids(["x/000123.jpg", "y/cat.png"]) == ["000123", "cat"]
    assert category_ids(NAMES) == [0, 1, 2]
    assert category_ids(coco_names())[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]  # 80 -> 91 ids


def test_perfect_detections_score_one_and_misses_lower_it():
    items = _items([[[0, 0.3, 0.3, 0.2, 0.2], [1, 0.7, 0.7, 0.3, 0.3]], [[2, 0.5, 0.5, 0.4, 0.4]], []])
    gt = coco_ground_truth(items, [(200, 200)] * 3, NAMES)
    m = coco_evaluate(gt, _perfect_results(gt), NAMES)
    assert m.map50 == pytest.approx(1.0) and m.map == pytest.approx(1.0)
    np.testing.assert_allclose(m.ap50, 1.0)
    assert (m.images, m.background_images) == (3, 1)
    assert m.instances.tolist() == [1, 1, 1] and m.detections.tolist() == [1, 1, 1]
    assert "Average Precision" in m.summary and len(m.stats) == 12
    # the triangle box shifted by half its width: IoU 1/3, a miss at every threshold
    shifted = _perfect_results(gt)
    shifted[2]["bbox"][0] += shifted[2]["bbox"][2] / 2
    m2 = coco_evaluate(gt, shifted, NAMES)
    assert m2.ap50.tolist() == pytest.approx([1.0, 1.0, 0.0]) and m2.map50 == pytest.approx(2 / 3)


def test_class_without_ground_truth_and_no_detections():
    gt = coco_ground_truth(_items([[[0, 0.5, 0.5, 0.2, 0.2]]]), [(100, 100)], NAMES)
    m = coco_evaluate(gt, _perfect_results(gt), NAMES)
    assert m.map50 == pytest.approx(1.0) and np.isnan(m.ap50[1:]).all()  # AP undefined, not 0
    assert json.loads(json.dumps(m.to_dict()))["classes"][1]["ap50"] is None
    empty = coco_evaluate(gt, [], NAMES)
    assert (empty.map50, empty.map) == (0.0, 0.0) and empty.detections.sum() == 0


# --- bad inputs through the CLI ------------------------------------------------------------------
def test_bad_inputs_one_line_errors(tmp_path, trained, capsys):
    images, labels = write_dataset(tmp_path / "ok", {"a": "0 0.5 0.5 0.2 0.2\n"})
    (tmp_path / "empty").mkdir()
    (tmp_path / "nolabels").mkdir()
    (tmp_path / "nolabels" / "x.json").write_text("{}")
    cases = [
        ((tmp_path / "nope", labels), "no such images folder"),
        ((images, tmp_path / "nope"), "no such labels folder"),
        ((tmp_path / "empty", labels), "folder holds no images"),
        ((images, tmp_path / "nolabels"), "folder holds no .txt label files"),
    ]
    bg_images, bg_labels = write_dataset(tmp_path / "bg", {"a": "", "b": None})
    cases.append(((bg_images, bg_labels), "no labelled object for any image"))
    bad_images, bad_labels = write_dataset(tmp_path / "bad", {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 .5 .5 .2\n"})
    cases.append(((bad_images, bad_labels), f"{bad_labels / 'b.txt'}:1: expected 'cls cx cy w h'"))
    corrupt_images, corrupt_labels = write_dataset(tmp_path / "corrupt", {"a": "0 0.5 0.5 0.2 0.2\n"})
    (corrupt_images / "z.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    cases.append(((corrupt_images, corrupt_labels), f"{corrupt_images / 'z.jpg'}: cannot decode image"))
    for (im, lb), words in cases:
        rc = main(["val", str(trained[1]), "--images", str(im), "--labels", str(lb)])
        captured = capsys.readouterr()
        assert rc == 2 and words in error_line(captured.err), (words, captured.err)
        assert captured.out == ""


# --- the trained fixture: real numbers ----------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The checkpoint loaded once: a Detector on it and its dynamic ONNX export (exported from the
    same loaded model)."""
    if not CKPT.exists():
        pytest.fail(f"{CKPT} is missing (a test must not pass without its data)")
    from yolor_deploy.checkpoint import load_checkpoint
    from yolor_deploy.export import export_onnx
    from yolor_deploy.runtime.backends.torch_backend import TorchBackend

    model = load_checkpoint(CKPT)
    onnx_path = tmp_path_factory.mktemp("val") / "shapes-dynamic.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(model, onnx_path, imgsz=(IMGSZ, IMGSZ), dynamic=True, verify=False)
    return TorchBackend(model), onnx_path


def _detector(model) -> Detector:
    return Detector(model, conf_thres=0.001, iou_thres=0.65, max_det=300, imgsz=IMGSZ, batch_size=4)


def test_trained_checkpoint_and_onnx_give_the_same_high_map(trained, tmp_path, capsys):
    backend, onnx_path = trained
    pt = evaluate(_detector(backend), TRAINED / "images", TRAINED / "labels")
    assert pt.map50 > MAP50_MIN and pt.map > MAP_MIN, (pt.map50, pt.map)
    assert (pt.images, int(pt.instances.sum())) == (20, 95) and (pt.ap50 > 0.85).all()
    assert pt.settings["imgsz"] == [IMGSZ, IMGSZ] and pt.settings["conf_thres"] == 0.001

    out = tmp_path / "metrics.json"
    rc = main(["val", str(onnx_path), "--images", str(TRAINED / "images"), "--labels", str(TRAINED / "labels"),
               "--imgsz", str(IMGSZ), "--batch", "4", "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 0 and captured.err == ""
    doc = json.loads(out.read_text())
    assert abs(doc["map50"] - pt.map50) < 1e-3 and abs(doc["map"] - pt.map) < 1e-3
    np.testing.assert_allclose([c["ap50"] for c in doc["classes"]], pt.ap50, atol=1e-3)
    assert f"mAP@0.5 {doc['map50']:.4f}" in captured.out and "triangle" in captured.out


def test_wrong_labels_drop_map_sharply(trained, tmp_path):
    """Every box moved right by 40% of its width (IoU 0.43): the good model now scores badly."""
    _, onnx_path = trained
    shifted = tmp_path / "labels"
    shifted.mkdir()
    for p in sorted((TRAINED / "labels").glob("*.txt")):
        rows = np.loadtxt(p, ndmin=2)
        rows[:, 1] = np.clip(rows[:, 1] + 0.4 * rows[:, 3], 0, 1)
        np.savetxt(shifted / p.name, rows, fmt="%d %.6f %.6f %.6f %.6f")
    m = evaluate(_detector(onnx_path), TRAINED / "images", shifted)
    assert m.map50 < 0.3 and m.map < 0.1, (m.map50, m.map)


def test_val_on_onnx_imports_no_torch(trained, tmp_path):
    _, onnx_path = trained
    pred = tmp_path / "pred.json"
    code = ("import sys; from yolor_deploy.cli.main import main; "
            f"rc = main(['val', {str(onnx_path)!r}, '--images', {str(TRAINED / 'images')!r}, '--labels', "
            f"{str(TRAINED / 'labels')!r}, '--save-pred', {str(pred)!r}]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    entries = json.loads(pred.read_text())
    assert set(entries[0]) == {"image_id", "category_id", "bbox", "score"}
    assert {e["image_id"] for e in entries} <= set(range(20)) and min(e["score"] for e in entries) >= 0.001
