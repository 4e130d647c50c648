"""Label-free accuracy (`optimize.accuracy`) and the uncertainty of a drop (`optimize.uncertainty`).

Detections are built directly (real `Detections`, real pycocotools matching): a dense scene of 150 objects per
image, far above COCO's 100 detections per image, where the old agreement score rated fp32 against itself at
0.03; and candidates that move boxes or drop objects by a known amount.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolor_deploy.eval import LabeledImage
from yolor_deploy.optimize.accuracy import AGREEMENT_CONF, AccuracySet, labels_from_detections, score, with_labels
from yolor_deploy.optimize.uncertainty import DropInterval, drop_interval
from yolor_deploy.runtime.results.detections import Detections

NAMES = ("a", "b", "c")
H, W = 480, 640


def scene(rng, n_objects=150, low=40):
    """A reference's detections: n_objects of class 0 above the operating threshold (a 15x10 grid of 30 px
    boxes), and `low` of any class below it (as NMS from conf 0.001 leaves them)."""
    gx, gy = np.meshgrid(np.arange(15) * 42 + 5, np.arange(10) * 46 + 5)
    xy = np.stack([gx.ravel(), gy.ravel()], 1)[:n_objects].astype(np.float32)
    boxes = np.concatenate([xy, xy + 30], 1)
    lowb = boxes[rng.integers(0, n_objects, low)] + np.float32(15)
    xyxy = np.concatenate([boxes, lowb]).astype(np.float32)
    scores = np.concatenate([rng.uniform(0.3, 0.99, n_objects), rng.uniform(0.001, 0.2, low)]).astype(np.float32)
    classes = np.concatenate([np.zeros(n_objects, np.int64), rng.integers(0, 3, low)])  # all of one class:
    # COCO's cap of 100 detections applies per image and class
    return Detections(xyxy, scores, classes, NAMES, (H, W))


def moved(d: Detections, rng, px=0.0, miss=0.0):
    """`d` with every box shifted by up to `px` pixels and a fraction `miss` of them gone."""
    keep = rng.random(len(d)) >= miss
    xyxy = d.xyxy[keep] + rng.uniform(-px, px, (int(keep.sum()), 4)).astype(np.float32)
    return Detections(xyxy, d.scores[keep], d.classes[keep], NAMES, (H, W))


def agreement_set(ref: list[Detections]) -> AccuracySet:
    items = [LabeledImage(Path(f"{i}.jpg"), None, np.zeros((0, 5))) for i in range(len(ref))]
    return with_labels(AccuracySet(items, labelled=False), labels_from_detections(ref, AGREEMENT_CONF))


@pytest.fixture(scope="module")
def dense():
    rng = np.random.default_rng(0)
    ref = [scene(rng) for _ in range(12)]
    return rng, ref, agreement_set(ref)


def test_fp32_against_itself_is_exactly_one_with_150_objects_per_image(dense):
    _, ref, aset = dense
    s, m = score(aset, ref, [(H, W)] * len(ref), NAMES)
    print(f"fp32 vs itself: AP@0.5 {s['map50']!r}, AP@0.5:0.95 {s['map']!r}, {s['objects']} objects")
    assert s["objects"] == 12 * 150
    assert s["map50"] == 1.0 and s["map"] == 1.0  # exactly, not approximately
    assert drop_interval(None, m, "map50") == DropInterval(0.0, 0.0, 0.0, 12)


def test_jitter_costs_little_at_iou_05_and_misses_cost_their_share(dense):
    rng, ref, aset = dense
    shapes = [(H, W)] * len(ref)
    jitter, _ = score(aset, [moved(d, rng, px=2.0) for d in ref], shapes, NAMES)
    missing, m_miss = score(aset, [moved(d, rng, miss=0.1) for d in ref], shapes, NAMES)
    print(f"2 px jitter: AP@0.5 {jitter['map50']:.4f}, AP@.5:.95 {jitter['map']:.4f}; "
          f"10% missed: AP@0.5 {missing['map50']:.4f}")
    assert jitter["map50"] == 1.0 and jitter["map"] < 0.95  # the operating match forgives sub-box jitter
    assert 0.85 < missing["map50"] < 0.93  # about 10 % of the objects are gone, and recall says so
    iv = drop_interval(None, m_miss, "map50")
    print(f"10% missed: drop {iv.drop:.2f} points, 95% interval {iv.lo:.2f}..{iv.hi:.2f}")
    assert iv.lo <= iv.drop <= iv.hi and iv.lo > 5 and iv.hi < 15


def test_the_interval_narrows_with_more_images_and_says_how_many_would_decide():
    rng = np.random.default_rng(1)
    widths = []
    for n in (8, 32):
        ref = [scene(rng, n_objects=20, low=5) for _ in range(n)]
        aset = agreement_set(ref)
        _, m = score(aset, [moved(d, rng, miss=0.03) for d in ref], [(H, W)] * n, NAMES)
        iv = drop_interval(None, m, "map50")
        widths.append(iv.hi - iv.lo)
    print(f"interval width: {widths[0]:.2f} points on 8 images, {widths[1]:.2f} on 32")
    assert widths[1] < 0.75 * widths[0]
    iv = DropInterval(drop=0.25, lo=-0.25, hi=0.75, images=20)
    assert iv.images_needed(0.5) == 20 * 4  # half-width 0.5 must shrink to the 0.25 left: 4x the images
    assert DropInterval(0.2, 0.0, 0.4, 20).images_needed(0.5) == 20  # already decided
    assert DropInterval(0.6, 0.1, 1.2, 20).images_needed(0.5) is None  # over the budget on average


def test_paired_bootstrap_of_a_labelled_drop_is_paired():
    """With labels, a candidate identical to the reference has drop 0 on every resample (paired), however
    hard each image is; an unpaired bootstrap would give a wide interval around 0."""
    rng = np.random.default_rng(2)
    truth = [scene(rng, n_objects=20, low=0) for _ in range(16)]
    aset = agreement_set(truth)
    aset = AccuracySet(aset.items, labelled=True)
    cand = [moved(d, rng, px=6.0, miss=0.2) for d in truth]
    _, m_ref = score(aset, cand, [(H, W)] * 16, NAMES)
    _, m_same = score(aset, cand, [(H, W)] * 16, NAMES)
    assert drop_interval(m_ref, m_same, "map") == DropInterval(0.0, 0.0, 0.0, 16)


@pytest.mark.slow
def test_a_random_full_size_model_agrees_with_itself_exactly(tmp_path):
    """The issue's case: yolor-p6 with seeded random weights (80 classes, many boxes per image) scored against
    its own detections on the bundled images, as `optimize` without labels does: 1.0 exactly (was 0.028)."""
    from yolor_deploy import assets
    from yolor_deploy.export import export_onnx
    from yolor_deploy.nn.registry import create_model
    from yolor_deploy.optimize.accuracy import accuracy_set, detect_all
    from yolor_deploy.runtime import Detector

    path = tmp_path / "p6.onnx"
    export_onnx(create_model("yolor-p6", seed=0), path, imgsz=(192, 192), simplify=False, verify=False)
    aset = accuracy_set([], assets.val_images(), None, None)
    det = Detector(path, **aset.settings)
    dets, shapes = detect_all(det, aset.items)
    aset = with_labels(aset, labels_from_detections(dets))
    s, m = score(aset, dets, shapes, det.names)
    per_image = [int((d.scores >= AGREEMENT_CONF).sum()) for d in dets]
    print(f"yolor-p6 (random) vs itself: AP@0.5 {s['map50']!r} AP {s['map']!r}; {s['objects']} objects, "
          f"up to {max(per_image)} per image, {s['detections']} detections")
    assert s["objects"] >= 20 and len({c for d in dets for c in d.classes.tolist()}) >= 3
    assert s["map50"] == 1.0 and s["map"] == 1.0
    assert drop_interval(None, m, "map50") == DropInterval(0.0, 0.0, 0.0, len(dets))
