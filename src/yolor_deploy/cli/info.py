"""`yolor-deploy info`: what a checkpoint, or an exported model, contains."""
from __future__ import annotations

import argparse
import sys

from ._common import add_model_arguments, imgsz_arg, wide_console, working

HELP = "describe a checkpoint (classes, strides, anchors, parameters, GFLOPs) or an exported .onnx/.xml model"
DESCRIPTION = """\
Load a checkpoint safely (no upstream code, no arbitrary unpickling) and describe it. Given an
exported model (.onnx, or an OpenVINO .xml IR), show its input and outputs and the metadata the
runtime will use (classes, strides, size, NMS, fp16/int8, source checkpoint hash), without torch.

examples:
  yolor-deploy info yolor-p6.pt
  yolor-deploy info yolor-p6-640x640.onnx --json
  yolor-deploy info yolor_p6.pt --cfg yolor_p6 --imgsz 1280
  yolor-deploy info yolor-p6          (a registered variant: random weights)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N",
                   help="size for GFLOPs, N or H W (default: the training size when recorded, else 640)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def describe(model, imgsz: tuple[int, int]) -> dict:
    from ..nn.profile import count_gflops

    return {
        "branch": model.branch, "variant": str(model.variant), "source": getattr(model, "source", None),
        "sha256": model.source_sha256 or None, "nc": model.nc, "names": list(model.names),
        "strides": list(model.strides), "anchors": model.anchors_px().tolist(),
        "parameters": model.num_params(), "imgsz": list(imgsz), "gflops": round(count_gflops(model, imgsz), 2),
        "train_imgsz": list(model.train_imgsz) if model.train_imgsz else None,
        "train_imgsz_source": model.train_imgsz_source or None,
    }


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..runtime.describe import MODEL_SUFFIXES

    if Path(args.checkpoint).suffix.lower() in MODEL_SUFFIXES:
        return _model_file(args, json)

    from ..nn.registry import VARIANTS, create_model

    if args.checkpoint in VARIANTS and not Path(args.checkpoint).exists():
        model = create_model(args.checkpoint, seed=0, well_conditioned=False)  # counts only: skip calibration
    else:
        from ..checkpoint import load_checkpoint

        with working(f"loading {args.checkpoint} ..."):
            model = load_checkpoint(args.checkpoint, cfg=args.cfg)
    with working("counting GFLOPs ..."):
        size = imgsz_arg(args.imgsz) if args.imgsz or not model.train_imgsz else model.train_imgsz
        info = describe(model, size)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    _show(f"{args.checkpoint}", [
        ("branch", info["branch"]), ("variant", info["variant"]), ("classes", _classes(info["names"])),
        ("strides", ", ".join(map(str, info["strides"]))),
        ("anchors (px)", "\n".join(f"P{s}: " + " ".join(f"{w:g}x{h:g}" for w, h in a)
                                   for s, a in zip(info["strides"], info["anchors"]))),
        ("parameters", f"{info['parameters']:,}"),
        ("training size", f"{info['train_imgsz'][0]}x{info['train_imgsz'][1]} ({info['train_imgsz_source']})"
         if info["train_imgsz"] else "not recorded (no imgsz in the checkpoint, no opt.yaml beside it)"),
        (f"GFLOPs @{info['imgsz'][0]}x{info['imgsz'][1]}", f"{info['gflops']:.1f}"),
        ("sha256", info["sha256"] or "-")])
    return 0


def _classes(names: list[str]) -> str:
    """"N: a, b, c" with at most 12 names spelled out."""
    return f"{len(names)}: " + ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")


def _show(title: str, rows: list[tuple[str, object]]) -> None:
    from rich.table import Table

    t = Table(title=title, show_header=False)
    for k, v in rows:
        t.add_row(k, str(v))
    wide_console().print(t)


def _model_file(args: argparse.Namespace, json) -> int:
    from ..runtime.describe import describe_model

    info = describe_model(args.checkpoint)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    nms = info["nms"]
    rows = [("runtime", f"{info['runtime']} (loaded in {info['load_s']:.2f} s)"),
            ("input", f"{'x'.join(map(str, info['input']['shape']))} {info['input']['dtype']}"),
            ("outputs", "\n".join(f"{k}: {'x'.join(map(str, v))}" for k, v in info["outputs"].items())),
            ("metadata", info["metadata"]), ("classes", _classes(info["names"])),
            ("strides", ", ".join(map(str, info["stride"]))),
            ("size", "dynamic" if info["dynamic"] else "x".join(map(str, info["imgsz"] or ["?"]))),
            ("nms", "in the runtime (NumPy)" if nms["mode"] == "none" else
             f"in the graph ({nms['mode']}): conf {nms['conf_thres']:g}, iou {nms['iou_thres']:g}, "
             f"max {nms['max_det']}"),
            ("precision", info["quantized"] or ("fp16 (fp32 interface)" if info["half"] else "fp32")),
            ("source", f"{info['branch'] or '-'} {info['variant'] or ''} sha256 {info['source_sha256'] or '-'}"),
            ("made by", f"yolor-deploy {info['version']}" if info["version"] else "-")]
    if "opset" in info:
        top = ", ".join(f"{k} {v}" for k, v in list(info["op_types"].items())[:8])
        rows.append(("graph", f"opset {info['opset']}, {info['nodes']} nodes ({top}, ...)"))
    _show(f"{args.checkpoint} ({info['format']})", rows)
    for w in info["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return 0
