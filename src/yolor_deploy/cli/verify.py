"""`yolor-deploy verify`: is an exported model faithful to its checkpoint?"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_model_arguments, wide_console

HELP = "check that an ONNX model or OpenVINO IR (from any exporter) computes what its checkpoint computes"
DESCRIPTION = """\
Run the exported model and the checkpoint's PyTorch model on the same inputs (a letterboxed image and
random input; for dynamic models also two other sizes at batch 2) and judge the exported outputs
against a float64 PyTorch forward. The tolerance is measured, not assumed: 3x the largest error of a
few equivalent fp32 computations of the untouched PyTorch model (1 thread, channels-last, oneDNN off,
input and weights moved by a few ulps), per column
group (boxes relative to their size, probabilities), on the median, 99th percentile and maximum, so
the same verdict holds on any CPU. Detections after NMS are matched too; fp16 models are judged on
detections only; NMS graphs against NumPy NMS; ScatterND nodes fail. Works for models made by
upstream's export.py, a hand-written script, or any yolor-deploy version.

exit status: 0 faithful; 1 not faithful (run `yolor-deploy diff CKPT MODEL.onnx` to find the first
layer that departs); 2 bad input; 3 nothing could be checked (e.g. the output ignores its input).

examples:
  yolor-deploy verify yolor-p6.pt yolor-p6-640x640.onnx
  yolor-deploy verify yolor_csp.pt csp.onnx --cfg yolor_csp --image street.jpg --report r.json
  yolor-deploy verify yolor-p6.pt yolor-p6-640x640.xml       (an OpenVINO IR, run in OpenVINO, f32)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("model", help="the exported model: .onnx (run in ONNX Runtime) or OpenVINO .xml")
    p.add_argument("--image", default=None, help="real image to verify on (default: the bundled sample)")
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N", default=None,
                   help="size for a dynamic model, N or H W (default: its export size, else 640)")
    p.add_argument("--openvino", action="store_true", help="also run an .onnx in OpenVINO (CPU, f32)")
    p.add_argument("--report", default=None, help="write the report as JSON here")


def run(args: argparse.Namespace) -> int:
    from ..assets import sample_image
    from ..checkpoint import load_checkpoint
    from ..verify.exported import verify_file
    from ..verify.table import report_table
    from ._common import imgsz_arg

    console = wide_console()
    imgsz = imgsz_arg(args.imgsz) if args.imgsz else None
    with console.status(f"verifying {args.model} against {args.checkpoint} ..."):
        model = load_checkpoint(args.checkpoint, cfg=args.cfg)
        report = verify_file(model, args.model, image=args.image or str(sample_image()), imgsz=imgsz,
                             openvino=args.openvino)
    console.print(report_table(report, title=f"verify {args.model} vs {args.checkpoint} (float64 PyTorch)"))
    if args.report:
        report.write_json(args.report)
    if not report.passed:
        console.print(f"[bold red]NOT FAITHFUL[/]: {'; '.join(report.failures()[:3])}", soft_wrap=True)
        if Path(args.model).suffix.lower() == ".onnx":
            console.print(f"find where it departs: yolor-deploy diff {args.checkpoint} {args.model}"
                          + (f" --cfg {args.cfg}" if args.cfg else ""), soft_wrap=True)
        return 1
    for line in report.not_checked():
        console.print(f"[yellow]not checked: {line}[/]")
    if not report.checked:
        console.print("[yellow]INCONCLUSIVE[/]: no case could be checked")
        return 3
    console.print(f"[green]faithful[/]: largest err/tol {report.max_ratio:.2f} (<= 1 passes)")
    return 0
