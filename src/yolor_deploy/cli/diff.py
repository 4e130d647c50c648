"""`yolor-deploy diff`: the first layer where an ONNX export departs from its checkpoint."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

HELP = "find the first layer where an ONNX model and its PyTorch checkpoint diverge"
DESCRIPTION = """\
For the day a model fails verification: run the checkpoint in PyTorch (fp32 and fp64, with hooks on
every top-level layer) and the ONNX model in ONNX Runtime (every layer's output tensor, found by the
exporter's module-scope node names, added as an extra graph output), on the same input, and compare
layer by layer: shape, max abs and max rel difference, and err (vs fp64) against a tolerance of
2 x PyTorch fp32's own error + RTOL x max|value|.

status: ok; folded (differs from the checkpoint but matches the folded model the export was made
from: expected where an export fold moves math across a layer boundary, e.g. the main-branch head's
implicit layers); DIVERGED; skipped (no tensor in the graph: a constant, or a layer folded away).

Exit status 1 when a divergence is found, 0 when none, 2 on errors.

examples:
  yolor-deploy diff yolor-p6.pt yolor-p6.onnx
  yolor-deploy diff yolor_csp.pt yolor_csp.onnx --cfg yolor_csp --image horses.jpg --json diff.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="the PyTorch checkpoint the model was exported from")
    p.add_argument("onnx", type=Path, help="the exported .onnx model")
    p.add_argument("--cfg", default=None, help="config for main-branch checkpoints (variant name or .cfg)")
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N", default=None,
                   help="input size N or H W (default: the export size from the model's metadata or input shape)")
    p.add_argument("--image", type=Path, default=None,
                   help="compare on this image, letterboxed (default: seeded random input)")
    p.add_argument("--rtol", type=float, default=None,
                   help="relative part of the tolerance, times max|value| per layer (default 1e-3; 2e-2 for "
                        "--half exports)")
    p.add_argument("--json", type=Path, default=None, help="also write every row to this JSON file")


def _input_geometry(proto, imgsz) -> tuple[tuple[int, int], int, dict]:
    """((H, W), batch, metadata) for the comparison input."""
    from ..errors import InputError
    from ..export.passes import get_metadata

    meta = get_metadata(proto) or {}
    dims = [d.dim_value if d.HasField("dim_value") else None for d in proto.graph.input[0].type.tensor_type.shape.dim]
    static_hw = tuple(dims[2:4]) if len(dims) == 4 and all(dims[2:4]) else None
    if imgsz:
        if len(imgsz) > 2:
            raise InputError("--imgsz takes N or H W")
        hw = (imgsz[0], imgsz[-1])
        if static_hw and hw != static_hw:
            raise InputError(f"--imgsz {hw[0]} {hw[1]}: the model has a static input of {static_hw[0]}x{static_hw[1]}")
    elif static_hw:
        hw = static_hw
    elif meta.get("imgsz"):
        hw = tuple(meta["imgsz"])
    else:
        raise InputError("the model has a dynamic input and no export size in its metadata: pass --imgsz")
    batch = dims[0] if dims and dims[0] else 1
    return (int(hw[0]), int(hw[1])), int(batch), meta


def make_input(hw: tuple[int, int], batch: int, stride: int, image: Path | None):
    """ndarray[batch, 3, H, W] float32: a letterboxed image, or seeded uniform noise in [0, 1)."""
    import numpy as np

    from ..errors import InputError

    if image is None:
        return np.random.default_rng(0).random((batch, 3, *hw), dtype=np.float32)
    from ..verify.verify import image_input

    try:
        x = image_input(image, hw, stride)
    except FileNotFoundError as e:
        raise InputError(str(e)) from None
    return np.repeat(x, batch, 0)


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def summary_lines(diffs) -> list[str]:
    from ..verify.layer_diff import first_divergence, fold_hint

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


def run(args: argparse.Namespace) -> int:
    import onnx
    from ._common import wide_console

    from ..checkpoint import load_checkpoint
    from ..errors import InputError, first_line
    from ..runtime.atomic import write_json
    from ..verify.layer_diff import DEFAULT_RTOL, HALF_RTOL, diff_layers, diff_table, first_divergence
    from .predict import warnings_to_stderr

    for path in (args.onnx, args.image):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: no such file")
    try:
        proto = onnx.load(str(args.onnx))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise InputError(f"{args.onnx}: not a readable ONNX model ({type(e).__name__})") from None
    hw, batch, meta = _input_geometry(proto, args.imgsz)
    rtol = args.rtol if args.rtol is not None else (HALF_RTOL if meta.get("half") else DEFAULT_RTOL)
    console = wide_console()
    with warnings_to_stderr():
        model = load_checkpoint(args.checkpoint, cfg=args.cfg)
        x = make_input(hw, batch, max(model.strides), args.image)
        try:
            diffs = diff_layers(model, proto, x, rtol=rtol)
        except Exception as e:  # noqa: BLE001 - ORT and onnx raise many types; report one line
            raise InputError(f"{args.onnx}: cannot run the layer comparison ({first_line(e)})") from None
    src = f"{args.image} (letterboxed)" if args.image else "seeded random input"
    console.print(f"per-layer diff: {args.onnx} (ONNX Runtime) vs {args.checkpoint} (PyTorch)\n"
                  f"input: {src}, {batch}x3x{hw[0]}x{hw[1]}; rtol {rtol:g}",
                  soft_wrap=True, highlight=False, markup=False)
    console.print(diff_table(diffs, title=None))
    for line in summary_lines(diffs):
        console.print(line, highlight=False)
    first = first_divergence(diffs)
    if args.json:
        write_json(args.json, _clean({
            "checkpoint": str(args.checkpoint), "onnx": str(args.onnx), "input": src,
            "input_shape": [batch, 3, *hw], "rtol": rtol,
            "first_divergence": first.to_dict() if first else None, "layers": [d.to_dict() for d in diffs],
        }), indent=2)
        console.print(f"rows written to {args.json}", highlight=False)
    return 1 if first is not None else 0
