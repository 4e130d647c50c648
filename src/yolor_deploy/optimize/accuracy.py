"""Accuracy of a candidate: COCO mAP (pycocotools, through `eval/`) on labelled images, or, without
labels, its agreement with the fp32 reference: mAP of the candidate's detections scored against the
reference's detections (score >= 0.25) as ground truth.

Agreement uses one NMS setting (iou 0.45, as `predict`) for both sides, so the reference scores exactly
1.0 against itself: its detections above 0.25 are the same boxes whether NMS starts at 0.001 or 0.25.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..eval import LabeledImage, coco_evaluate, coco_ground_truth, coco_results, find_labeled_images, image_ids
from ..runtime.inputs.sources import read_image
from ..runtime.results.detections import Detections

LABELS_SETTINGS = {"conf_thres": 0.001, "iou_thres": 0.65}  # upstream test.py
AGREEMENT_SETTINGS = {"conf_thres": 0.001, "iou_thres": 0.45}
AGREEMENT_CONF = 0.25  # the reference's detections above this are the ground truth (predict's default)


@dataclass
class AccuracySet:
    """The images accuracy is measured on; `labelled`: ground truth from label files (else agreement
    with the reference candidate, whose detections fill `items`' labels once measured)."""

    items: list[LabeledImage]
    labelled: bool

    @property
    def settings(self) -> dict[str, float]:
        return LABELS_SETTINGS if self.labelled else AGREEMENT_SETTINGS

    @property
    def metric(self) -> str:
        return "mAP vs labels" if self.labelled else "mAP vs fp32 detections"


def accuracy_set(images: Sequence[Path], val_images: Path | None, val_labels: Path | None,
                 nc: int | None) -> AccuracySet:
    """Labelled `val_images` when labels are given; else the images of `val_images`, or `images`
    (the calibration images) when no validation folder is given."""
    if val_images is not None and val_labels is not None:
        return AccuracySet(find_labeled_images(val_images, val_labels, nc), labelled=True)
    if val_images is not None:
        from ..runtime.inputs.sources import resolve_sources

        images = [s.path for s in resolve_sources([val_images]) if s.kind == "image"]
    return AccuracySet([LabeledImage(Path(p), None, np.zeros((0, 5))) for p in images], labelled=False)


def detect_all(detector, items: Sequence[LabeledImage],
               step: Callable[[], None] | None = None) -> tuple[list[Detections], list[tuple[int, int]]]:
    """The detections of `detector` on every image, and the images' (h, w)."""
    dets, shapes = [], []
    for it in items:
        im = read_image(it.path)
        shapes.append(im.shape[:2])
        dets += detector(im)
        if step:
            step()
    return dets, shapes


def labels_from_detections(dets: Sequence[Detections], conf: float = AGREEMENT_CONF) -> list[np.ndarray]:
    """YOLO labels ndarray[N, 5] (cls, cx, cy, w, h normalised) of the detections scoring >= conf."""
    out = []
    for d in dets:
        h, w = d.image_shape
        keep = d.scores >= conf
        b = d.xyxy[keep].astype(np.float64)
        cx, cy = (b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h
        bw, bh = (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h
        out.append(np.stack([d.classes[keep].astype(np.float64), cx, cy, bw, bh], 1).reshape(-1, 5))
    return out


def with_labels(aset: AccuracySet, labels: Sequence[np.ndarray]) -> AccuracySet:
    """`aset` with each image's labels replaced (agreement mode: the reference's detections)."""
    return AccuracySet([LabeledImage(it.path, None, lab) for it, lab in zip(aset.items, labels)], aset.labelled)


def score(aset: AccuracySet, dets: Sequence[Detections], shapes: Sequence[tuple[int, int]],
          names: Sequence[str]) -> dict[str, float | int]:
    """{"map50", "map", "detections", "objects"} of `dets` against `aset`'s labels (pycocotools)."""
    gt = coco_ground_truth(aset.items, shapes, names)
    results = coco_results(dets, image_ids([it.path for it in aset.items]), names)
    m = coco_evaluate(gt, results, names)
    return {"map50": float(m.map50), "map": float(m.map), "detections": len(results),
            "objects": len(gt["annotations"])}
