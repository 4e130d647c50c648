"""A catalogue of plausible bugs in the runtime's pre- and post-processing, injected through the public API
(monkeypatching the functions `Detector` calls); the runtime parity test against the independent
reference pipeline (`reference_pipeline.py`) must catch every one. Used by
tests/runtime/test_runtime_bugs.py and scripts/verify_margins.py."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from yolor_deploy.runtime import detector as detector_mod
from yolor_deploy.runtime.inputs.letterbox import Letterboxed
from yolor_deploy.runtime.post import boxes as boxes_mod

_letterbox = detector_mod.letterbox
_scale_boxes = detector_mod.scale_boxes


def _odd_pad_top_left(mp):
    """The odd padding pixel put at the top/left instead of the bottom/right."""
    def letterbox(img, new_shape, color, auto, stride, scaleup=True):
        lb = _letterbox(img, new_shape, color, auto=auto, stride=stride, scaleup=scaleup)
        dw, dh = lb.pad
        im = lb.image
        if dh != int(dh):  # move one row from the bottom to the top
            im = np.concatenate([im[-1:], im[:-1]], 0)
        if dw != int(dw):
            im = np.concatenate([im[:, -1:], im[:, :-1]], 1)
        return Letterboxed(np.ascontiguousarray(im), lb.ratio, lb.pad)

    mp.setattr(detector_mod, "letterbox", letterbox)


def _bgr_as_rgb(mp):
    def letterbox(*a, **kw):
        lb = _letterbox(*a, **kw)
        return Letterboxed(np.ascontiguousarray(lb.image[:, :, ::-1]), lb.ratio, lb.pad)

    mp.setattr(detector_mod, "letterbox", letterbox)


def _scale(**wrong):
    def scale_boxes(boxes, from_shape, to_shape, ratio_pad=None, clip=True):
        if wrong.get("no_clip"):
            clip = False
        if wrong.get("max_gain") or wrong.get("no_pad"):
            gain = (max if wrong.get("max_gain") else min)(from_shape[0] / to_shape[0], from_shape[1] / to_shape[1])
            pad = (0.0, 0.0) if wrong.get("no_pad") else ((from_shape[1] - to_shape[1] * gain) / 2,
                                                          (from_shape[0] - to_shape[0] * gain) / 2)
            ratio_pad = ((gain, gain), pad)
        return _scale_boxes(boxes, from_shape, to_shape, ratio_pad, clip)

    return lambda mp: mp.setattr(detector_mod, "scale_boxes", scale_boxes)


def _clip_swapped(mp):
    def clip_boxes(b, shape):
        out = np.array(b, copy=True)
        h, w = shape[:2]
        np.clip(out[:, 0::2], 0, h, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, w, out=out[:, 1::2])
        return out

    mp.setattr(boxes_mod, "clip_boxes", clip_boxes)


RUNTIME_BUGS: dict[str, Callable] = {
    "letterbox: odd padding pixel at the top/left": _odd_pad_top_left,
    "BGR fed as RGB": _bgr_as_rgb,
    "scale-back gain from the larger ratio": _scale(max_gain=True),
    "scale-back without removing the padding": _scale(no_pad=True),
    "boxes not clipped to the image": _scale(no_clip=True),
    "clipping with height and width swapped": _clip_swapped,
}


def compare(dets, refs) -> tuple[int, float, float]:
    """(detections that differ in count or class, largest box difference px, largest score difference)
    between the runtime's Detections and the reference rows, image by image."""
    bad, box, score = 0, 0.0, 0.0
    for d, r in zip(dets, refs):
        if len(d) != len(r) or not np.array_equal(d.classes, r[:, 5].astype(np.int64)):
            bad += max(len(d), len(r))
            continue
        if len(d):
            box = max(box, float(np.abs(d.xyxy.astype(np.float64) - r[:, :4]).max()))
            score = max(score, float(np.abs(d.scores.astype(np.float64) - r[:, 4]).max()))
    return bad, box, score
