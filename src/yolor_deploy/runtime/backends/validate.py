"""A model's inputs and outputs checked against its metadata, when it is opened and on every result: a
tampered or foreign model fails with one line naming the file instead of giving garbage boxes."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...contract import NMS_OUTPUTS
from ...errors import InputError
from .protocol import Backend


def expected_rows(h: int, w: int, strides: Sequence[int], na: int = 3) -> int:
    return sum(na * (h // s) * (w // s) for s in strides)


def check_model_io(backend: Backend) -> None:
    """Static checks (declared shapes) of `backend`'s model against its metadata."""
    meta, path = backend.metadata, backend.path
    shape_in = tuple(backend.input_shape)
    if len(shape_in) != 4 or (shape_in[1] is not None and shape_in[1] != 3):
        raise InputError(f"{path}: input {list(shape_in)} is not an RGB image batch [B, 3, H, W]")
    names = list(backend.output_names)
    has_nms_outputs = set(NMS_OUTPUTS) <= set(names)
    if meta.nms.mode != "none":
        if not has_nms_outputs:
            raise InputError(f"{path}: its metadata says NMS is in the graph ({meta.nms.mode}) but the outputs are "
                             f"{names}, not {list(NMS_OUTPUTS)}")
        return
    if has_nms_outputs and len(names) == len(NMS_OUTPUTS):
        raise InputError(f"{path}: its outputs are NMS results {names} but its metadata says nms 'none'")
    shape = tuple(backend.output_shapes[0]) if getattr(backend, "output_shapes", None) else ()
    if not shape:
        return
    if len(shape) != 3:
        raise InputError(f"{path}: output {names[0]} {list(shape)} is not [B, N, 5+nc]")
    _check_columns(path, names[0], shape, meta.nc if meta.from_model else None, shape_in, meta.stride)


def _check_columns(path: str, name: str, shape: tuple, nc: int | None, shape_in: tuple, strides) -> None:
    _, n, cols = shape
    if cols is not None and cols < 6:
        raise InputError(f"{path}: output {name} {list(shape)} has {cols} columns; [B, N, 5+nc] needs at least 6")
    h, w = shape_in[2], shape_in[3]
    rows = {expected_rows(h, w, s) for s in (tuple(strides), (8, 16, 32), (8, 16, 32, 64))} if h and w else set()
    if cols is not None and cols in rows and n != cols:
        raise InputError(f"{path}: output {name} {list(shape)} looks transposed ([B, 5+nc, N]); expected "
                         f"[B, {cols}, 5+nc]")
    if nc is not None and cols is not None and cols != nc + 5:
        hint = " (transposed?)" if n == nc + 5 else ""
        raise InputError(f"{path}: output {name} {list(shape)} has {cols} columns but its metadata names {nc} "
                         f"classes (5+nc = {nc + 5}){hint}")


def check_raw_output(path: str, pred: np.ndarray, nc: int | None, batch: int) -> None:
    """The array a raw model actually returned: [>=batch, N, 5+nc]."""
    if pred.ndim != 3 or pred.shape[0] < batch or pred.shape[2] < 6 or (nc is not None and pred.shape[2] != nc + 5):
        want = f"5+nc = {nc + 5}" if nc is not None else "5+nc"
        raise InputError(f"{path}: the model returned {list(pred.shape)}, not [B, N, {want}]")


def check_nms_outputs(path: str, num, boxes, scores, classes, batch: int) -> None:
    """The arrays an NMS graph actually returned: num_dets [B,1], boxes [B,K,4], scores/classes [B,K]."""
    ok = (num.ndim >= 1 and boxes.ndim == 3 and boxes.shape[2] == 4 and scores.ndim == 2 and classes.ndim == 2
          and min(len(num), len(boxes), len(scores), len(classes)) >= batch
          and boxes.shape[1] == scores.shape[1] == classes.shape[1])
    if not ok:
        raise InputError(f"{path}: NMS outputs of unexpected shapes: num_dets {list(num.shape)}, boxes "
                         f"{list(boxes.shape)}, scores {list(scores.shape)}, classes {list(classes.shape)}")
