"""`eval.resample`: AP re-accumulated over any multiset of images equals pycocotools on that image set.

Ground truth: the bundled shapes labels; detections: the labels jittered, rescored, with false positives and
misses (seeded), so every branch of the matching (true/false positives, missed objects, classes absent from a
sample) is taken. The reference is pycocotools' own COCOeval, run on the same images (and, for a resample,
on a ground truth where each drawn image is a separate copy).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from yolor_deploy.assets import val_images, val_labels
from yolor_deploy.eval import find_labeled_images
from yolor_deploy.eval.resample import image_matches

NAMES = ("circle", "square", "triangle")
SHAPE = (480, 640)  # (h, w): the label boxes are normalised, any size works


def ground_truth(items, copies=None):
    """COCO gt dict; `copies`: image indices (repeats allowed), each a separate image id."""
    order = range(len(items)) if copies is None else copies
    images, anns = [], []
    for new_id, i in enumerate(order):
        images.append({"id": new_id, "file_name": f"{new_id}.jpg", "width": SHAPE[1], "height": SHAPE[0]})
        for cls, cx, cy, w, h in items[i].labels:
            box = [(cx - w / 2) * SHAPE[1], (cy - h / 2) * SHAPE[0], w * SHAPE[1], h * SHAPE[0]]
            anns.append({"id": len(anns) + 1, "image_id": new_id, "category_id": int(cls), "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
    cats = [{"id": k, "name": n, "supercategory": ""} for k, n in enumerate(NAMES)]
    return {"images": images, "annotations": anns, "categories": cats}


def detections(gt, seed=0):
    """Per image: each object found with a jittered box (or missed), plus false positives; random scores."""
    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.random() < 0.15:
            continue  # a miss
        x, y, w, h = a["bbox"]
        j = rng.normal(0, 0.06, 4) * [w, h, w, h]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"],
                    "bbox": [x + j[0], y + j[1], max(w + j[2], 1), max(h + j[3], 1)], "score": float(rng.random())})
    for im in gt["images"]:
        for _ in range(int(rng.integers(0, 4))):
            out.append({"image_id": im["id"], "category_id": int(rng.integers(0, 3)),
                        "bbox": [float(rng.uniform(0, 500)), float(rng.uniform(0, 350)), 60.0, 60.0],
                        "score": float(rng.random() * 0.6)})
    return out


def pycocotools_ap(gt, results, max_dets=100):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes([dict(r) for r in results]), "bbox")
        ev.params.maxDets = [min(1, max_dets), min(10, max_dets), max_dets]  # summarize reads the last
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"][:, :, :, 0, -1]  # [T, R, K] at area "all" and the last max_dets (as summarize)
    return float(p[0][p[0] > -1].mean()), float(p[p > -1].mean())


@pytest.fixture(scope="module")
def items():
    return find_labeled_images(val_images(), val_labels(), 3)


@pytest.mark.parametrize("max_dets", [100, 3])
def test_every_image_once_equals_pycocotools(items, max_dets):
    gt = ground_truth(items)
    res = detections(gt)
    ours = image_matches(gt, res, max_dets).ap()
    ref = pycocotools_ap(gt, res, max_dets)
    print(f"AP@0.5 {ours[0]:.6f} vs {ref[0]:.6f}, AP@0.5:0.95 {ours[1]:.6f} vs {ref[1]:.6f} (max_dets {max_dets})")
    assert 0.3 < ref[1] < 0.95
    assert ours == pytest.approx(ref, abs=1e-12)


def test_a_resample_equals_pycocotools_on_the_resampled_images(items):
    """Drawing images with repeats is scoring a data set that holds each drawn image as often as it is drawn."""
    gt = ground_truth(items)
    res = detections(gt, seed=1)
    m = image_matches(gt, res)
    rng = np.random.default_rng(7)
    for _ in range(3):
        draw = rng.integers(0, len(items), len(items))
        copy_gt = ground_truth(items, draw)
        by_image: dict[int, list[dict]] = {}
        for r in res:
            by_image.setdefault(r["image_id"], []).append(r)
        copy_res = [{**r, "image_id": new_id} for new_id, i in enumerate(draw) for r in by_image.get(int(i), [])]
        assert m.ap(draw) == pytest.approx(pycocotools_ap(copy_gt, copy_res), abs=1e-12)


def test_perfect_detections_score_one_and_none_score_zero(items):
    gt = ground_truth(items)
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
               for a in gt["annotations"]]
    assert image_matches(gt, perfect).ap() == (1.0, 1.0)
    assert image_matches(gt, []).ap() == (0.0, 0.0)
