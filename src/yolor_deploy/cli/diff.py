"""`yolor-deploy diff`: the first layer where an ONNX export departs from its checkpoint."""
from __future__ import annotations

import argparse
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


def run(args: argparse.Namespace) -> int:
    import onnx

    from ..checkpoint import load_checkpoint
    from ..errors import InputError, first_line
    from ..fs import write_json
    from ..verify.diff_report import clean_json, input_geometry, make_input, summary_lines
    from ..verify.layer_diff import DEFAULT_RTOL, HALF_RTOL, diff_layers, diff_table, first_divergence
    from ._common import warnings_to_stderr, wide_console

    for path in (args.onnx, args.image):
        if path is not None and not path.is_file():
            raise InputError(f"{path}: no such file")
    try:
        proto = onnx.load(str(args.onnx))
    except Exception as e:  # noqa: BLE001 - protobuf raises several types
        raise InputError(f"{args.onnx}: not a readable ONNX model ({type(e).__name__})") from None
    hw, batch, meta = input_geometry(proto, args.imgsz)
    rtol = args.rtol if args.rtol is not None else (HALF_RTOL if meta is not None and meta.half else DEFAULT_RTOL)
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
        write_json(args.json, clean_json({
            "checkpoint": str(args.checkpoint), "onnx": str(args.onnx), "input": src,
            "input_shape": [batch, 3, *hw], "rtol": rtol,
            "first_divergence": first.to_dict() if first else None, "layers": [d.to_dict() for d in diffs],
        }), indent=2)
        console.print(f"rows written to {args.json}", highlight=False)
    return 1 if first is not None else 0
