"""Draw detections on a BGR image: a box per detection and a filled label "name 0.87".

Colours: a colour-blind-safe palette (Okabe & Ito's seven hues, then Paul Tol's "muted" nine), fixed
per class id so a class keeps its colour across images and runs; label text is black or white,
whichever contrasts more with the fill. Labels are placed by `place_labels`: inside the image, and
off the other boxes and the labels already placed where the image leaves room.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..inputs.opencv import cv2


class Drawable(Protocol):
    """What is drawn: `detections.Detections` is one (drawing does not import the detections, which draw themselves)."""

    xyxy: np.ndarray  # ndarray[K, 4] original-image pixels
    scores: np.ndarray  # ndarray[K]
    classes: np.ndarray  # ndarray[K] int

    def name(self, cls: int) -> str: ...


def _bgr(hex_rgb: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_rgb[i:i + 2], 16) for i in (0, 2, 4))
    return (b, g, r)


OKABE_ITO = ("E69F00", "56B4E9", "009E73", "F0E442", "0072B2", "D55E00", "CC79A7")
TOL_MUTED = ("CC6677", "332288", "DDCC77", "117733", "88CCEE", "882255", "44AA99", "999933", "AA4499")
PALETTE = tuple(_bgr(c) for c in OKABE_ITO + TOL_MUTED)

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (x2, y2 exclusive)


def class_color(cls: int) -> tuple[int, int, int]:
    """The BGR colour of class `cls` (the palette repeats after 16 classes)."""
    return PALETTE[int(cls) % len(PALETTE)]


def text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text on a BGR `fill`, by its relative luminance (WCAG)."""
    def lin(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    b, g, r = fill
    lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    return (0, 0, 0) if (lum + 0.05) / 0.05 > 1.05 / (lum + 0.05) else (255, 255, 255)


def _area(a: Rect, b: Rect) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def place_labels(boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], image_hw: tuple[int, int]) -> list[Rect]:
    """A rectangle per label (`sizes`: (w, h) each) for `boxes` (pixel xyxy), in order of priority.

    Each label tries, in turn: above the box's top-left corner, inside it at the top, below its
    bottom, inside it at the bottom; each shifted to lie inside the image. It takes the first spot
    that covers no other box and no label placed before it, else the spot covering the least.
    """
    H, W = image_hw
    placed: list[Rect] = []
    for i, ((x1, y1, _x2, y2), (tw, th)) in enumerate(zip(boxes, sizes)):
        tw, th = min(tw, W), min(th, H)
        x = min(max(x1, 0), W - tw)
        spots = [(x, y1 - th), (x, y1), (x, y2), (x, y2 - th)]
        best: tuple[int, Rect] | None = None
        for sx, sy in spots:
            sy = min(max(sy, 0), H - th)
            rect = (sx, sy, sx + tw, sy + th)
            cover = sum(_area(rect, b) for j, b in enumerate(boxes) if j != i) + sum(_area(rect, p) for p in placed)
            if best is None or cover < best[0]:
                best = (cover, rect)
            if cover == 0:
                break
        assert best is not None
        placed.append(best[1])
    return placed


def draw_detections(image: np.ndarray, det: Drawable, line_width: int | None = None) -> np.ndarray:
    """A copy of `image` ndarray[H, W, 3] uint8 BGR with `det` drawn (boxes rounded to pixels); line
    width and font scale follow the image size."""
    out = np.ascontiguousarray(image).copy()
    H, W = out.shape[:2]
    lw = line_width or max(round((H + W) / 2 * 0.003), 1)
    font_scale = max(lw / 3, 0.35)
    thick = max(lw - 1, 1)
    boxes: list[Rect] = [tuple(int(round(float(v))) for v in box) for box in det.xyxy]  # type: ignore[misc]
    labels = [f"{det.name(int(c))} {float(s):.2f}" for c, s in zip(det.classes, det.scores)]
    sizes = []
    for label in labels:
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        sizes.append((tw + 4, th + base + 4))
    for (x1, y1, x2, y2), cls in zip(boxes, det.classes):
        cv2.rectangle(out, (x1, y1), (x2, y2), class_color(int(cls)), thickness=lw, lineType=cv2.LINE_AA)
    order = np.argsort(-np.asarray(det.scores), kind="stable")  # the most confident labels choose first
    spots = place_labels([boxes[i] for i in order], [sizes[i] for i in order], (H, W))
    for i, (lx1, ly1, lx2, ly2) in zip(order, spots):
        color = class_color(int(det.classes[i]))
        cv2.rectangle(out, (lx1, ly1), (lx2 - 1, ly2 - 1), color, -1, cv2.LINE_AA)
        (_, th), base = cv2.getTextSize(labels[i], cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        cv2.putText(out, labels[i], (lx1 + 2, ly1 + 2 + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    text_color(color), thick, cv2.LINE_AA)
    return out
