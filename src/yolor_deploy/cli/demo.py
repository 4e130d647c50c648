"""`yolor-deploy demo`: the main job end to end on a built-in default."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "build a variant (seeded random weights), export + verify it, and run predict on a sample image"
DESCRIPTION = """\
The whole pipeline on a built-in default, with nothing to download:
  1. build the registered variant with seeded random weights (no weights can be downloaded here:
     the detections are meaningless, the pipeline is real) and save it in our checkpoint format;
  2. load that checkpoint safely and export it to ONNX, verified against PyTorch;
  3. run `predict` with the ONNX model on the bundled sample image.

examples:
  yolor-deploy demo
  yolor-deploy demo --variant yolor_csp --imgsz 416 --out runs/demo-csp
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default="yolor-p6",
                   help="registered variant: yolor-p6 (default), yolor-w6, yolor-e6, yolor-d6, yolor-ssss-s2d, "
                        "yolor-ssss-dwt, yolor_p6, yolor_w6, yolor_csp, yolor_csp_x")
    p.add_argument("--imgsz", type=int, default=640, help="export size (default 640)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--conf-thres", type=float, default=0.25, help="predict score threshold (default 0.25)")


def run(args: argparse.Namespace) -> int:
    from ..assets import sample_image
    from ..checkpoint import save_checkpoint
    from ..export import ExportOptions, export_onnx
    from ..errors import ConfigError
    from ..nn.registry import VARIANTS, create_model
    from ..verify.table import report_table
    from ._common import wide_console
    from .main import main as cli_main

    if args.variant not in VARIANTS:
        raise ConfigError(f"{args.variant}: not a registered variant ({', '.join(VARIANTS)})")

    console = wide_console()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    console.rule(f"1/3 build {args.variant} (seeded random weights: no download possible here)")
    ckpt = save_checkpoint(create_model(args.variant, seed=0), out / f"{args.variant}.pt")
    console.print(f"checkpoint: {ckpt}")
    console.rule("2/3 export to ONNX and verify against PyTorch")
    onnx_path = out / f"{args.variant}-{args.imgsz}.onnx"
    report = out / "verify-report.json"
    with console.status("exporting and verifying ..."):
        result = export_onnx(ckpt, onnx_path, options=ExportOptions(
            imgsz=(args.imgsz, args.imgsz), verify_image=str(sample_image()), report=str(report)))
    console.print(report_table(result.report))
    console.print(f"onnx: {onnx_path}   report: {report}")
    console.rule("3/3 predict on the bundled sample image")
    save_dir = out / "predict"
    rc = cli_main(["predict", str(onnx_path), str(sample_image()), "--save-dir", str(save_dir), "--save-json",
                   "--conf-thres", str(args.conf_thres)])
    console.rule("done")
    console.print(f"checkpoint  {ckpt}\nonnx        {onnx_path}\nreport      {report}\npredictions {save_dir}")
    return rc
