"""Accuracy of a candidate: COCO mAP@0.5:0.95 (pycocotools' matching, through `eval/`) on labelled images,
or, without labels, its agreement with the fp32 reference at the operating point: AP@0.5 of the candidate's
detections (from conf 0.001) scored against the reference's detections at predict's threshold (score >= 0.25)
as ground truth, same class, IoU >= 0.5, with no cap on detections per image.

Agreement uses one NMS setting (iou 0.45, as `predict`) for both sides, so the reference scores exactly
1.0 against itself (tests/optimize): its detections above 0.25 are the same boxes whether NMS starts at 0.001
or 0.25, each matches itself, so recall reaches 1 before any false positive. IoU 0.5 is the operating match
(what a user sees as "the same box"); the stricter AP@0.5:0.95 of the same matching is reported beside it, but
it punishes the sub-pixel box jitter of any int8 model (0.86-0.95 on the bundled model, whose int8 candidates
score as well as fp32 against labels). Every score keeps its per-image matching (`eval.resample`), so the
drop gets a bootstrap interval (`optimize.uncertainty`).

Boxes under a pixel wide or high (zero after clipping to the image, or sub-pixel slivers: a model with
saturated outputs, such as a full-size variant with random weights, puts many on the border) are left out of
agreement on both sides, not labels and not detections: they are nothing a user sees, and their IoU, even
with themselves, is at the mercy of rounding (COCO results carry 3 decimals; a 0.0002 px box is 0 wide).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..eval import LabeledImage, coco_ground_truth, coco_results, find_labeled_images, image_ids
from ..eval.resample import ImageMatches, image_matches
from ..runtime.inputs.sources import read_image
from ..runtime.results.detections import Detections

LABELS_SETTINGS = {"conf_thres": 0.001, "iou_thres": 0.65}  # upstream test.py
AGREEMENT_SETTINGS = {"conf_thres": 0.001, "iou_thres": 0.45}
AGREEMENT_CONF = 0.25  # the reference's detections above this are the ground truth (predict's default)
LABELS_MAX_DETS = 100  # COCO's (and upstream test.py's) cap per image
AGREEMENT_MAX_DETS = 100_000  # no cap: a model with many objects per image must still agree with itself
MIN_BOX_PX = 1.0  # agreement's smallest box side (see the module docstring)


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
        return "mAP@0.5:0.95 vs labels" if self.labelled else "agreement: AP@0.5 vs fp32's detections >= 0.25"

    @property
    def which(self) -> str:
        """The score the budget applies to: "map" (mAP@0.5:0.95) with labels, "map50" for agreement."""
        return "map" if self.labelled else "map50"


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


def with_area(d: Detections) -> Detections:
    """`d` without its boxes under MIN_BOX_PX wide or high (agreement's rule, see the module docstring)."""
    keep = (d.xyxy[:, 2] - d.xyxy[:, 0] >= MIN_BOX_PX) & (d.xyxy[:, 3] - d.xyxy[:, 1] >= MIN_BOX_PX)
    if keep.all():
        return d
    return replace(d, xyxy=d.xyxy[keep], scores=d.scores[keep], classes=d.classes[keep])


def labels_from_detections(dets: Sequence[Detections], conf: float = AGREEMENT_CONF) -> list[np.ndarray]:
    """YOLO labels ndarray[N, 5] (cls, cx, cy, w, h normalised) of the detections scoring >= conf, at least
    MIN_BOX_PX wide and high."""
    out = []
    for d in map(with_area, dets):
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
          names: Sequence[str]) -> tuple[dict[str, float | int], ImageMatches]:
    """({"map50", "map", "detections", "objects"}, the per-image matching) of `dets` against `aset`'s labels."""
    gt = coco_ground_truth(aset.items, shapes, names)
    if not aset.labelled:
        dets = [with_area(d) for d in dets]
    results = coco_results(dets, image_ids([it.path for it in aset.items]), names)
    m = image_matches(gt, results, LABELS_MAX_DETS if aset.labelled else AGREEMENT_MAX_DETS)
    map50, map_ = m.ap()
    return {"map50": map50, "map": map_, "detections": len(results), "objects": len(gt["annotations"])}, m
