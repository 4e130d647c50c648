"""COCO AP over any multiset of images (for bootstrap intervals), from pycocotools' own per-image matching.

`image_matches` runs `COCOeval.evaluate()` once: its greedy matching of each image's detections to its objects,
per class, at the ten IoU thresholds (area "all", at most `max_dets` detections per image). `ImageMatches.ap`
then accumulates AP over a sample of image indices (repeats allowed) the way `COCOeval.accumulate` does:
detections of the sample sorted by score (stable), cumulative true/false positives, the precision envelope
read at 101 recall points, classes without objects in the sample left out. Over every image once it equals
COCOeval's summary (tests/eval/test_resample.py), so a resampled AP is the same metric on another image set.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ImageMatches:
    """Per class k and image i: `scores[k][i]` ndarray[D] (sorted, high first), `matched[k][i]` /
    `ignored[k][i]` bool ndarray[T, D], and `objects[k, i]` the objects that count."""

    scores: tuple[tuple[np.ndarray, ...], ...]
    matched: tuple[tuple[np.ndarray, ...], ...]
    ignored: tuple[tuple[np.ndarray, ...], ...]
    objects: np.ndarray  # int64 [K, I]
    iou_thresholds: np.ndarray  # [T]
    recall_points: np.ndarray  # [R]

    @property
    def n_images(self) -> int:
        return int(self.objects.shape[1])

    def ap(self, sample: Sequence[int] | np.ndarray | None = None) -> tuple[float, float]:
        """(AP@0.5, AP@0.5:0.95) averaged over the classes with objects in `sample` (image indices;
        default every image once); (0, 0) when the sample has no object at all."""
        idx = np.arange(self.n_images) if sample is None else np.asarray(sample, dtype=np.int64)
        per_class = []
        for k in range(len(self.scores)):
            n_obj = int(self.objects[k, idx].sum())
            if n_obj == 0:
                continue
            per_class.append(self._class_ap(k, idx, n_obj))
        if not per_class:
            return 0.0, 0.0
        table = np.stack(per_class)  # [K', T]
        t50 = int(np.argmin(np.abs(self.iou_thresholds - 0.5)))
        return float(table[:, t50].mean()), float(table.mean())

    @cached_property
    def _by_class(self) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
        """Per class, every image's detections at once, sorted by score (high first, stable in image order, as
        COCOeval.accumulate sorts them): (image index [D], true positive [T, D], false positive [T, D])."""
        out = []
        t = len(self.iou_thresholds)
        for k in range(len(self.scores)):
            scores = np.concatenate([np.zeros(0), *self.scores[k]])
            image = np.concatenate([np.zeros(0, np.int64),
                                    *[np.full(len(s), i, np.int64) for i, s in enumerate(self.scores[k])]])
            matched = np.concatenate([np.zeros((t, 0), bool), *self.matched[k]], axis=1)
            ignored = np.concatenate([np.zeros((t, 0), bool), *self.ignored[k]], axis=1)
            order = np.argsort(-scores, kind="mergesort")
            out.append((image[order], (matched & ~ignored)[:, order], (~matched & ~ignored)[:, order]))
        return tuple(out)

    def _class_ap(self, k: int, idx: np.ndarray, n_obj: int) -> np.ndarray:
        """AP of class k at each IoU threshold over the images `idx` (repeats allowed). An image drawn m times
        counts each of its detections m times: the same curve as m concatenated copies (a copy's detections tie
        with the original's, and a run of tied true or false positives moves the interpolated precision only at
        its end), without concatenating or sorting per sample."""
        image, tp_k, fp_k = self._by_class[k]
        t = len(self.iou_thresholds)
        weight = np.bincount(idx, minlength=self.n_images)[image]
        keep = weight > 0
        if not keep.any():
            return np.zeros(t)
        w = weight[keep].astype(np.float64)
        tp = np.cumsum(tp_k[:, keep] * w, axis=1)
        fp = np.cumsum(fp_k[:, keep] * w, axis=1)
        recall = tp / n_obj
        precision = tp / (tp + fp + np.spacing(1))
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        d = recall.shape[1]
        at = np.stack([np.searchsorted(recall[j], self.recall_points, side="left") for j in range(t)])
        ok = at < d
        q = np.where(ok, np.take_along_axis(envelope, np.minimum(at, d - 1), axis=1), 0.0)
        return q.mean(axis=1)


def image_matches(gt: dict[str, Any], results: list[dict], max_dets: int = 100) -> ImageMatches:
    """pycocotools' matching of `results` to `gt` (COCO dicts, as `eval.coco` builds them), kept per image."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(r) for r in results]) if results else COCO()
        if not results:
            coco_dt.dataset = {"images": gt["images"], "annotations": [], "categories": gt["categories"]}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = [min(1, max_dets), min(10, max_dets), max_dets]  # matching reads the last
        ev.evaluate()
    p = ev.params
    n_img, n_area, n_t = len(p.imgIds), len(p.areaRng), len(p.iouThrs)
    empty_t = np.zeros((n_t, 0), dtype=bool)
    scores, matched, ignored = [], [], []
    objects = np.zeros((len(p.catIds), n_img), dtype=np.int64)
    for k in range(len(p.catIds)):
        s_k, m_k, i_k = [], [], []
        for i in range(n_img):
            e = ev.evalImgs[k * n_area * n_img + i]  # area index 0: "all"
            if e is None:
                s_k.append(np.zeros(0))
                m_k.append(empty_t)
                i_k.append(empty_t)
                continue
            s_k.append(np.asarray(e["dtScores"][:max_dets], dtype=np.float64))
            m_k.append(np.asarray(e["dtMatches"][:, :max_dets]) > 0)
            i_k.append(np.asarray(e["dtIgnore"][:, :max_dets], dtype=bool))
            objects[k, i] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
        scores.append(tuple(s_k))
        matched.append(tuple(m_k))
        ignored.append(tuple(i_k))
    return ImageMatches(tuple(scores), tuple(matched), tuple(ignored), objects,
                        np.asarray(p.iouThrs, dtype=np.float64), np.asarray(p.recThrs, dtype=np.float64))
