"""`yolor-deploy info`: what a checkpoint contains."""
from __future__ import annotations

import argparse

from ._common import add_model_arguments, imgsz_arg

HELP = "show branch, variant, classes, strides, anchors, parameters and GFLOPs of a checkpoint"
DESCRIPTION = """\
Load a checkpoint safely (no upstream code, no arbitrary unpickling) and describe it.

examples:
  yolor-deploy info yolor-p6.pt
  yolor-deploy info yolor_p6.pt --cfg yolor_p6 --imgsz 1280
  yolor-deploy info yolor-p6          (a registered variant: random weights)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N", help="size for GFLOPs, N or H W (default 640)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def describe(model, imgsz: tuple[int, int]) -> dict:
    from ..nn.profile import count_gflops

    return {
        "branch": model.branch, "variant": str(model.variant), "source": getattr(model, "source", None),
        "sha256": getattr(model, "source_sha256", None), "nc": model.nc, "names": list(model.names),
        "strides": list(model.strides), "anchors": model.anchors_px().tolist(),
        "parameters": model.num_params(), "imgsz": list(imgsz), "gflops": round(count_gflops(model, imgsz), 2),
    }


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from ..nn.registry import VARIANTS, create_model

    if args.checkpoint in VARIANTS and not Path(args.checkpoint).exists():
        model = create_model(args.checkpoint, seed=0)
    else:
        from ..checkpoint import load_checkpoint

        model = load_checkpoint(args.checkpoint, cfg=args.cfg)
    info = describe(model, imgsz_arg(args.imgsz))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    t = Table(title=f"{args.checkpoint}", show_header=False)
    names = info["names"]
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
    for k, v in [("branch", info["branch"]), ("variant", info["variant"]), ("classes", f"{info['nc']}: {shown}"),
                 ("strides", ", ".join(map(str, info["strides"]))),
                 ("anchors (px)", "\n".join(f"P{s}: " + " ".join(f"{w:g}x{h:g}" for w, h in a)
                                            for s, a in zip(info["strides"], info["anchors"]))),
                 ("parameters", f"{info['parameters']:,}"),
                 (f"GFLOPs @{info['imgsz'][0]}x{info['imgsz'][1]}", f"{info['gflops']:.1f}"),
                 ("sha256", info["sha256"] or "-")]:
        t.add_row(k, str(v))
    Console().print(t)
    return 0
