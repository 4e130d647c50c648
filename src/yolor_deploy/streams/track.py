"""ByteTrack (Zhang et al. 2022) on our own IoU and Kalman filter, numpy only: high-score detections are
matched to every live track first, then low-score ones to the tracks still unmatched (they keep a track alive
through occlusion and blur instead of being thrown away), new tracks start from unmatched high-score
detections and are confirmed by a second match; a track unseen for `track_buffer` frames is forgotten.
Matching is greedy by IoU (highest first), within a class."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.post.boxes import box_convert, box_iou
from .kalman import BoxKalman


@dataclass(eq=False)
class _Track:
    kf: BoxKalman
    cls: int
    score: float
    hits: int = 1
    missed: int = 0
    track_id: int = 0  # 0 until confirmed

    def box(self) -> np.ndarray:
        return box_convert(self.kf.x[None, :4], "cxcywh", "xyxy")[0]


def _greedy(iou: np.ndarray, thresh: float) -> list[tuple[int, int]]:
    pairs, used_r, used_c = [], set(), set()
    if iou.size:
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            r, c = divmod(int(flat), iou.shape[1])
            if iou[r, c] < thresh:
                break
            if r not in used_r and c not in used_c:
                pairs.append((r, c))
                used_r.add(r)
                used_c.add(c)
    return pairs


class ByteTracker:
    """`update(xyxy, scores, classes)` per frame -> a track id per detection (-1: not tracked)."""

    def __init__(self, high_thresh: float = 0.5, low_thresh: float = 0.1, new_track_thresh: float = 0.6,
                 match_iou: float = 0.2, low_match_iou: float = 0.5, track_buffer: int = 30):
        self.high, self.low, self.new = high_thresh, low_thresh, new_track_thresh
        self.match_iou, self.low_match_iou, self.buffer = match_iou, low_match_iou, track_buffer
        self.tracks: list[_Track] = []
        self.frame = 0
        self._next_id = 1
        self._taken = np.zeros(0, np.int64)  # detections matched in the current frame

    def _iou(self, tracks: list[_Track], boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        if not tracks or not len(boxes):
            return np.zeros((len(tracks), len(boxes)))
        tb = np.stack([t.box() for t in tracks]).astype(np.float32)
        same = np.array([t.cls for t in tracks])[:, None] == classes[None, :]
        return box_iou(tb, boxes.astype(np.float32)) * same

    def _match(self, tracks: list[_Track], idx: np.ndarray, xyxy, scores, classes, thresh: float,
               ids: np.ndarray) -> list[_Track]:
        """Match `tracks` to detections `idx`; update the matched; return the unmatched tracks."""
        pairs = _greedy(self._iou(tracks, xyxy[idx], classes[idx]), thresh)
        for r, c in pairs:
            t, d = tracks[r], int(idx[c])
            t.kf.update(box_convert(xyxy[d:d + 1].astype(np.float64), "xyxy", "cxcywh")[0])
            t.hits, t.missed, t.score = t.hits + 1, 0, float(scores[d])
            if not t.track_id:
                t.track_id, self._next_id = self._next_id, self._next_id + 1
            ids[d] = t.track_id
        matched = {r for r, _ in pairs}
        self._taken = np.r_[self._taken, idx[[c for _, c in pairs]]].astype(np.int64)
        return [t for i, t in enumerate(tracks) if i not in matched]

    def update(self, xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """ndarray[K, 4] xyxy, ndarray[K] scores, ndarray[K] classes -> ndarray[K] int64 track ids."""
        self.frame += 1
        xyxy, scores = np.asarray(xyxy, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)
        classes = np.asarray(classes, np.int64)
        ids = np.full(len(scores), -1, np.int64)
        self._taken = np.zeros(0, np.int64)
        for t in self.tracks:
            t.kf.predict()
        high = np.flatnonzero(scores >= self.high)
        low = np.flatnonzero((scores >= self.low) & (scores < self.high))
        confirmed = [t for t in self.tracks if t.track_id]
        tentative = [t for t in self.tracks if not t.track_id]
        left = self._match(confirmed, high, xyxy, scores, classes, self.match_iou, ids)
        rest = np.setdiff1d(high, self._taken)
        left_tent = self._match(tentative, rest, xyxy, scores, classes, self.match_iou, ids)
        recent = [t for t in left if t.missed == 0]  # low-score boxes only rescue tracks seen last frame
        unrescued = self._match(recent, low, xyxy, scores, classes, self.low_match_iou, ids)
        for t in [*unrescued, *(t for t in left if t.missed > 0)]:
            t.missed += 1
        alive = [t for t in self.tracks if t.missed <= self.buffer and t not in left_tent]
        for d in np.setdiff1d(high, self._taken):
            if scores[d] >= self.new:
                t = _Track(BoxKalman(box_convert(xyxy[d:d + 1], "xyxy", "cxcywh")[0]), int(classes[d]),
                           float(scores[d]))
                if self.frame == 1:
                    t.track_id, self._next_id = self._next_id, self._next_id + 1
                    ids[d] = t.track_id
                alive.append(t)
        self.tracks = alive
        return ids
