"""Box helpers in NumPy (names after `torchvision.ops.boxes`).

Formats: `"xyxy"` (corners), `"cxcywh"` (centre and size, what the model outputs), `"xywh"`
(top-left corner and size, what COCO results use). Functions return new arrays; inputs are
not modified.
"""
from __future__ import annotations

import numpy as np

FORMATS = ("xyxy", "cxcywh", "xywh")


def box_convert(boxes: np.ndarray, in_fmt: str, out_fmt: str) -> np.ndarray:
    """Convert ndarray[..., 4] between "xyxy", "cxcywh" and "xywh"; returns a new array, same dtype."""
    if in_fmt not in FORMATS or out_fmt not in FORMATS:
        raise ValueError(f"box formats must be one of {FORMATS}, got {in_fmt!r} -> {out_fmt!r}")
    b = np.asarray(boxes)
    if in_fmt == out_fmt:
        return b.copy()
    # to xyxy
    if in_fmt == "cxcywh":
        half = b[..., 2:4] / 2
        xyxy = np.concatenate((b[..., 0:2] - half, b[..., 0:2] + half), axis=-1)
    elif in_fmt == "xywh":
        xyxy = np.concatenate((b[..., 0:2], b[..., 0:2] + b[..., 2:4]), axis=-1)
    else:
        xyxy = b
    # from xyxy
    if out_fmt == "xyxy":
        return xyxy.astype(b.dtype, copy=False)
    wh = xyxy[..., 2:4] - xyxy[..., 0:2]
    if out_fmt == "cxcywh":
        out = np.concatenate(((xyxy[..., 0:2] + xyxy[..., 2:4]) / 2, wh), axis=-1)
    else:
        out = np.concatenate((xyxy[..., 0:2], wh), axis=-1)
    return out.astype(b.dtype, copy=False)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """ndarray[N, 4] xyxy -> ndarray[N]."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU matrix ndarray[N, M] of xyxy ndarray[N, 4] and ndarray[M, 4]; 0 where the union is 0."""
    a1, a2 = box_area(boxes1), box_area(boxes2)
    lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = a1[:, None] + a2[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, 0).astype(np.result_type(boxes1, boxes2), copy=False)


def clip_boxes(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Clip xyxy ndarray[N, 4] to an image of `shape` (h, w): x to [0, w], y to [0, h]."""
    out = np.array(boxes, copy=True)
    h, w = shape[:2]
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out


def scale_boxes(
    boxes: np.ndarray,
    from_shape: tuple[int, int],
    to_shape: tuple[int, int],
    ratio_pad: tuple[tuple[float, float], tuple[float, float]] | None = None,
    clip: bool = True,
) -> np.ndarray:
    """Map xyxy ndarray[N, 4] from letterboxed `from_shape` (h, w) back to the image `to_shape` (h, w).

    Without `ratio_pad` the gain and padding are recomputed from the two shapes, as upstream
    `scale_coords` does in `detect.py` (gain = min ratio, pad = half the leftover).
    """
    if ratio_pad is None:
        gain = min(from_shape[0] / to_shape[0], from_shape[1] / to_shape[1])
        pad = ((from_shape[1] - to_shape[1] * gain) / 2, (from_shape[0] - to_shape[0] * gain) / 2)
    else:
        gain, pad = ratio_pad[0][0], ratio_pad[1]
    out = np.array(boxes, copy=True)
    out[:, [0, 2]] -= pad[0]
    out[:, [1, 3]] -= pad[1]
    out[:, :4] /= gain
    return clip_boxes(out, to_shape) if clip else out
