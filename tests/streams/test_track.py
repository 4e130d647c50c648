"""ByteTrack on synthetic trajectories with known identities, scored with motmetrics (IDF1, MOTA, ID switches):
objects moving at constant speed, two of one class crossing, detections missed at random, occlusion frames
where a box comes only at a low score, and low-score false positives."""
from __future__ import annotations

import numpy as np
import pytest

from yolor_deploy.streams.track import ByteTracker

mm = pytest.importorskip("motmetrics")

FRAMES = 80


def scene(seed: int = 0):
    """Per frame: ground truth (ids, xyxy) and detections (xyxy, scores, classes)."""
    rng = np.random.default_rng(seed)
    objects = [  # start (x, y), velocity, size, class
        ((20, 40), (4.0, 0.5), (40, 40), 0), ((340, 60), (-4.0, 0.4), (40, 40), 0),  # these two cross
        ((30, 220), (2.5, -0.5), (60, 30), 1), ((200, 300), (0.0, -2.0), (30, 50), 2), ((380, 300), (-3, -1), (36, 36), 1),
    ]
    frames = []
    for t in range(FRAMES):
        gt_ids, gt, det, score, cls = [], [], [], [], []
        for k, ((x, y), (vx, vy), (w, h), c) in enumerate(objects):
            cx, cy = x + vx * t, y + vy * t
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            gt_ids.append(k + 1)
            gt.append(box)
            if rng.random() < 0.1:
                continue  # missed
            occluded = 30 <= t < 36 and k == 2
            det.append(box + rng.normal(0, 1.5, 4))
            score.append(rng.uniform(0.15, 0.4) if occluded else rng.uniform(0.6, 0.95))
            cls.append(c)
        for _ in range(rng.integers(0, 2)):  # clutter
            cx, cy = rng.uniform(0, 400, 2)
            det.append(np.array([cx, cy, cx + 30, cy + 30]))
            score.append(rng.uniform(0.1, 0.3))
            cls.append(int(rng.integers(0, 3)))
        frames.append((gt_ids, np.array(gt), np.array(det).reshape(-1, 4), np.array(score), np.array(cls)))
    return frames


def iou_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - IoU of xyxy boxes, NaN (no match) below IoU 0.5: motmetrics' `iou_matrix`, which NumPy 2 broke."""
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    d = 1 - inter / (area(a)[:, None] + area(b)[None, :] - inter)
    d[d > 0.5] = np.nan
    return d


def track_metrics(tracker, frames) -> dict:
    acc = mm.MOTAccumulator(auto_id=True)
    for gt_ids, gt, det, score, cls in frames:
        ids = tracker.update(det, score, cls)
        keep = ids >= 0
        hyp = det[keep]
        acc.update(gt_ids, ids[keep].tolist(), iou_distance(gt, hyp))
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches"], name="s")
    return {k: float(summary[k].iloc[0]) for k in ("idf1", "mota", "num_switches")}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bytetrack_keeps_identities(seed):
    m = track_metrics(ByteTracker(), scene(seed))
    print(f"seed {seed}: IDF1 {m['idf1']:.3f} MOTA {m['mota']:.3f} ID switches {m['num_switches']:.0f}")
    assert m["num_switches"] == 0, m
    assert m["idf1"] >= 0.92 and m["mota"] >= 0.85, m  # 10% of boxes are never detected: MOTA <= ~0.9


def test_low_score_boxes_carry_a_track_through_occlusion():
    """The second ByteTrack stage: without it (low_thresh above every score) the occluded object loses
    frames; with it, its track id is kept on the low-score boxes."""
    frames = scene(0)
    full = track_metrics(ByteTracker(), frames)
    high_only = track_metrics(ByteTracker(low_thresh=0.5), frames)
    assert full["mota"] > high_only["mota"], (full, high_only)
