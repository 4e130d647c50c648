"""`yolor-deploy optimize`: the fastest model this machine can run within an mAP budget."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "find the fastest model this machine runs within an mAP budget (ORT/OpenVINO, fp32/bf16/int8)"
DESCRIPTION = """\
Build the candidates that make sense on this machine from one model: ONNX Runtime fp32 (the
reference) and int8 (QDQ, per-channel), OpenVINO fp32, bf16 (only where the CPU has native bf16)
and NNCF int8 (also with its float ops in bf16), fp16 where a GPU provider is present. Each is timed
(interleaved, the same input, p50/p90 of the backend call) and scored: with --val-images and
--val-labels, COCO mAP@0.5:0.95; without labels, agreement with the fp32 model at the operating
point (AP@0.5 against fp32's own detections at score >= 0.25; fp32 scores exactly 1). Each drop gets a
95% interval (paired bootstrap over the images); the fastest candidate whose drop is at most
--max-map-drop points at the interval's upper end is chosen (0: fp32 candidates only). A candidate
that fails is a row with its reason.

Writes into --out: report.json (every row, the choice and why), report.png (latency vs mAP, the
Pareto front), and best.onnx or best.xml + best.bin, whose metadata records the backend, precision
and threads it was measured with; `predict`/`val`/`bench`/`serve` (and `Detector`) run it that way.
A report is read only when named: `--hint report.json` runs a model the report names as best its way.

A checkpoint (.pt) is exported first (verified ONNX, opset 17, static --imgsz) into --out.

examples:
  yolor-deploy optimize model.onnx --calib data/images --val-images data/images --val-labels data/labels
  yolor-deploy optimize yolor_p6.pt --imgsz 640 --calib imgs/ --max-map-drop 1 --out runs/opt
  yolor-deploy optimize model.onnx --calib imgs/ --backends onnxruntime --threads 4
  yolor-deploy optimize model.onnx --calib imgs/ --throughput     (images/s in both run modes too)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="fp32 .onnx made by `yolor-deploy export`, or a checkpoint (.pt)")
    p.add_argument("--calib", nargs="+", required=True, metavar="SOURCE",
                   help="calibration images (files, folders, globs); also the accuracy images without labels")
    p.add_argument("--calib-size", type=int, default=32, metavar="N", help="calibration images at most (default 32)")
    p.add_argument("--val-images", type=Path, default=None, metavar="DIR", help="images to measure accuracy on")
    p.add_argument("--val-labels", type=Path, default=None, metavar="DIR",
                   help="YOLO txt labels of --val-images (without: agreement with fp32's detections)")
    p.add_argument("--max-map-drop", type=float, default=0.5, metavar="POINTS",
                   help="budget: points below fp32 of mAP@0.5:0.95 (labels) or agreement AP@0.5 (no labels), "
                        "at the upper end of the drop's 95%% interval (default 0.5, i.e. 0.005); "
                        "0: fp32 candidates only")
    p.add_argument("--backends", default=None, metavar="NAMES",
                   help="comma-separated: onnxruntime, openvino (default: both, where installed)")
    p.add_argument("--candidates", nargs="+", default=None, metavar="NAME",
                   help="only these candidates (the ORT fp32 reference always runs)")
    p.add_argument("--out", type=Path, default=Path("runs/optimize"), help="output folder (default runs/optimize)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads of every candidate (default: all)")
    p.add_argument("--runs", type=int, default=10, help="interleaved timing rounds (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    p.add_argument("--throughput", action="store_true",
                   help="also measure each candidate's images/s in latency mode (one call at a time) and throughput "
                        "mode (--streams calls in flight, as `predict --mode throughput` and `serve --mode "
                        "throughput` run it); two more columns")
    p.add_argument("--streams", type=int, default=None, metavar="N",
                   help="calls in flight in throughput mode (default: one per core, at least 2)")
    p.add_argument("--imgsz", type=int, nargs="+", default=None, metavar="N",
                   help="export size for a checkpoint (N or H W, default 640)")
    p.add_argument("--cfg", default=None, help="config for main-branch checkpoints (variant or .cfg)")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..optimize import OptimizeOptions, optimize_model
    from ..optimize.run import check_options
    from ._common import warnings_to_stderr, wide_console

    opts = OptimizeOptions(calib=args.calib, calib_size=args.calib_size, val_images=args.val_images,
                           val_labels=args.val_labels, max_map_drop=args.max_map_drop, backends=args.backends,
                           candidates=args.candidates, threads=args.threads, runs=args.runs, warmup=args.warmup,
                           throughput=args.throughput, streams=args.streams)
    check_options(opts)
    if not args.model.is_file():
        raise InputError(f"{args.model}: no such model file")
    console = wide_console()
    with warnings_to_stderr():
        model = _export_if_checkpoint(args, console)
        with _ProgressBars(console) as progress:
            doc = optimize_model(model, args.out, opts, progress=progress)
    _print(console, doc, args.out)
    return 0


def _export_if_checkpoint(args, console) -> Path:
    if args.model.suffix.lower() not in (".pt", ".pth"):
        return args.model
    from ..export import export_onnx
    from ._common import imgsz_arg

    hw = imgsz_arg(args.imgsz)
    out = args.out / f"{args.model.stem}-{hw[0]}x{hw[1]}.onnx"
    with console.status(f"exporting {args.model} to {out} (verified) ..."):
        export_onnx(str(args.model), out, imgsz=hw, opset=17, cfg=args.cfg)
    console.print(f"exported {out}", highlight=False)
    return out


class _ProgressBars:
    """Rich progress bars, one per stage (build, timing, accuracy), fed by optimize's callback."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bars = Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=console, transient=False,
                             disable=not console.is_terminal)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.bars.__enter__()
        return self.update

    def __exit__(self, *exc):
        return self.bars.__exit__(*exc)

    def update(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.bars.add_task(stage, total=total)
        self.bars.update(self.tasks[stage], completed=done, total=total)


def _print(console, doc: dict, out: Path) -> None:
    from ..optimize.report import render_table

    console.print(f"machine: {doc['machine_summary']}", highlight=False, soft_wrap=True)
    console.print(render_table(doc))
    console.print(f"chosen: {doc['why']}", highlight=False, soft_wrap=True)
    best = doc["best"]
    console.print(f"[green]wrote {out / best['file']}[/] (runs as measured: {best['runtime']}), "
                  f"{out / 'report.json'}, {out / 'report.png'}", highlight=False, soft_wrap=True)
