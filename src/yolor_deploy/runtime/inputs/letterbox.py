"""Letterbox resize as upstream YOLOR inference does it (`utils/datasets.py::letterbox`).

Keep the aspect ratio, scale so the image fits `new_shape` (upscaling allowed), pad with grey 114.
With `auto=True` the padded size is only rounded up to a multiple of `stride` (the minimum
rectangle, what `detect.py` uses with stride 64); with `auto=False` the output is exactly
`new_shape` (what a static-shape model needs).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .opencv import cv2

PAD_VALUE = 114


class Letterboxed(NamedTuple):
    """`image`: ndarray[h, w, C] padded; `ratio`: (w, h) scale; `pad`: (dw, dh) per side, maybe .5."""

    image: np.ndarray
    ratio: tuple[float, float]
    pad: tuple[float, float]


def letterbox_shape(
    shape: tuple[int, int],
    new_shape: int | tuple[int, int] = 640,
    auto: bool = True,
    stride: int = 64,
    scaleup: bool = True,
) -> tuple[float, tuple[int, int], tuple[float, float]]:
    """The geometry only: (r, (new_w, new_h) unpadded, (dw, dh) per side) for an image of `shape` (h, w).

    Same arithmetic as upstream: `r = min(H/h, W/w)`, `new_unpad = round(w*r), round(h*r)` (Python
    round), padding `W - new_w` (mod `stride` when `auto`) split in two halves. One deviation: a side
    that would round to 0 px (extreme aspect ratios, where upstream's `cv2.resize` raises) is kept at 1.
    """
    if isinstance(new_shape, int):
        new_shape = (new_shape, new_shape)
    h, w = int(shape[0]), int(shape[1])
    r = min(new_shape[0] / h, new_shape[1] / w)
    if not scaleup:
        r = min(r, 1.0)
    new_unpad = (max(1, int(round(w * r))), max(1, int(round(h * r))))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    if auto:
        dw, dh = dw % stride, dh % stride
    return r, new_unpad, (dw / 2, dh / 2)


def letterbox(
    img: np.ndarray,
    new_shape: int | tuple[int, int] = 640,
    color: tuple[int, int, int] | int = (PAD_VALUE, PAD_VALUE, PAD_VALUE),
    auto: bool = True,
    stride: int = 64,
    scaleup: bool = True,
) -> Letterboxed:
    """Resize `img` ndarray[h, w, C] (cv2.INTER_LINEAR) and pad it to `new_shape` (H, W) or an int.

    Top/bottom and left/right pads are `round(d - 0.1)` and `round(d + 0.1)` of the half padding `d`,
    so an odd padding puts the extra pixel at the bottom/right, as upstream.
    """
    r, new_unpad, (dw, dh) = letterbox_shape(img.shape[:2], new_shape, auto, stride, scaleup)
    if (img.shape[1], img.shape[0]) != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    if isinstance(color, int):
        color = (color, color, color)
    if top or bottom or left or right:
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color)
    return Letterboxed(img, (r, r), (dw, dh))
