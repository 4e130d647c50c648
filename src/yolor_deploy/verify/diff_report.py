"""The report of `yolor-deploy diff`: the comparison input and the summary lines (library side of the CLI)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx

from ..contract import MetadataError, ModelMetadata, parse_imgsz
from ..errors import InputError
from ..formats.onnx_meta import get_metadata
from .layer_diff import first_divergence, fold_hint
from .verify import image_input


def input_geometry(proto: onnx.ModelProto, imgsz) -> tuple[tuple[int, int], int, ModelMetadata | None]:
    """((H, W), batch, metadata) for the comparison input: `imgsz` (N or H W), else the static input size,
    else the export size in the metadata."""
    try:
        meta = get_metadata(proto)
    except MetadataError as e:
        raise InputError(f"malformed yolor_deploy metadata ({e})") from None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in proto.graph.input[0].type.tensor_type.shape.dim]
    static_hw = tuple(dims[2:4]) if len(dims) == 4 and all(dims[2:4]) else None
    if imgsz:
        try:
            hw = parse_imgsz(imgsz)
        except ValueError as e:
            raise InputError(f"--imgsz: {e}") from None
        if static_hw and hw != static_hw:
            raise InputError(f"--imgsz {hw[0]} {hw[1]}: the model has a static input of {static_hw[0]}x{static_hw[1]}")
    elif static_hw:
        hw = static_hw
    elif meta is not None and meta.imgsz:
        hw = meta.imgsz
    else:
        raise InputError("the model has a dynamic input and no export size in its metadata: pass --imgsz")
    batch = dims[0] if dims and dims[0] else 1
    return (int(hw[0]), int(hw[1])), int(batch), meta


def make_input(hw: tuple[int, int], batch: int, stride: int, image: Path | None):
    """ndarray[batch, 3, H, W] float32: a letterboxed image, or seeded uniform noise in [0, 1)."""
    if image is None:
        return np.random.default_rng(0).random((batch, 3, *hw), dtype=np.float32)
    x = image_input(image, hw, stride)
    return np.repeat(x, batch, 0)


def clean_json(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
    return v


def summary_lines(diffs) -> list[str]:
    first = first_divergence(diffs)
    counts = {s: sum(d.status == s for d in diffs) for s in ("ok", "folded", "DIVERGED", "skipped")}
    lines = [f"{len(diffs)} rows: {counts['ok']} ok, {counts['folded']} folded, {counts['DIVERGED']} diverged, "
             f"{counts['skipped']} skipped (no tensor of their own in the graph)"]
    if first is None:
        lines.append("no divergence: the ONNX model matches PyTorch at every compared layer and at the output")
        return lines
    where = "the decoded output" if first.index is None else f"layer {first.label} ({first.type})"
    lines.append(f"first divergence: {where}, ONNX tensor {first.tensor!r}: err {first.err:.3g} > tolerance "
                 f"{first.tolerance:.3g}" + (f" ({first.note})" if first.note else ""))
    hint = fold_hint(diffs)
    if first.index is None and hint is not None:
        lines.append(f"every layer matches the folded model the export was made from; the first layer where that "
                     f"folded model departs from the checkpoint is {hint.label} ({hint.type}): check the folds there")
    return lines
