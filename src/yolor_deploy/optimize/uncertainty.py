"""How sure a measured accuracy drop is: a paired bootstrap over images, and how many images would decide.

The reference and the candidate are scored on the same resampled image sets (paired: an image that is hard
for one is hard for the other), `ImageMatches.ap` re-accumulating COCO AP on each resample. The interval is
the percentile interval of the drop; a candidate is within a budget only when the interval's upper end is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..eval.resample import ImageMatches

RESAMPLES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class DropInterval:
    """Drop in points (100 x (reference - candidate)) of the score `which` ("map" or "map50"), with its
    bootstrap interval [lo, hi] and the number of images it came from."""

    drop: float
    lo: float
    hi: float
    images: int

    def images_needed(self, budget: float) -> int | None:
        """Images for the interval's upper end to come within `budget` at this drop (the half-width shrinks
        as 1/sqrt(n)); None when the measured drop itself is over the budget (more images cannot help)."""
        if self.hi <= budget:
            return self.images
        if self.drop >= budget:
            return None
        return math.ceil(self.images * ((self.hi - self.drop) / (budget - self.drop)) ** 2)


def _value(m: ImageMatches | None, which: str, sample) -> float:
    if m is None:  # agreement mode: the reference against its own detections scores 1 by definition
        return 1.0
    ap50, ap = m.ap(sample)
    return ap50 if which == "map50" else ap


def drop_interval(reference: ImageMatches | None, candidate: ImageMatches, which: str = "map",
                  resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> DropInterval:
    """The candidate's drop against `reference` (None: a perfect score of 1) with a paired bootstrap interval."""
    n = candidate.n_images
    drop = 100 * (_value(reference, which, None) - _value(candidate, which, None))
    if n < 2:
        return DropInterval(drop, drop, drop, n)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n, size=(resamples, n))
    drops = np.array([100 * (_value(reference, which, s) - _value(candidate, which, s)) for s in samples])
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(drops, [tail, 100 - tail])
    return DropInterval(drop, float(min(lo, drop)), float(max(hi, drop)), n)
