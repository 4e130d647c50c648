"""`yolor-deploy export`: checkpoint -> ONNX, verified against PyTorch."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_model_arguments, imgsz_arg, wide_console

HELP = "export a checkpoint to ONNX and prove it matches PyTorch"
DESCRIPTION = """\
Export a YOLOR checkpoint to ONNX with export-time rewrites (no in-place slice writes, no
ScatterND, grids from the runtime shape, Conv+BN and implicit layers folded), then verify it.
First the folds and the rewrites on their own: in float64, before tracing, the transformed copy must
compute the checkpoint's function (exact algebra, ~1e-14); a transform that departs stops the export
naming the first layer that departs. Then the file: ONNX Runtime vs PyTorch on a letterboxed image and
random input (and, with --dynamic, two other sizes at batch 2), judged against a float64 forward of the
untouched model. The file is written only if everything passes.

Outputs: --nms none: `output` [B, N, 5+nc] (cx, cy, w, h px, obj, cls...), upstream's decoded
output. --nms onnx|trt: num_dets [B,1], boxes [B,K,4] xyxy, scores [B,K], classes [B,K].

examples:
  yolor-deploy export yolor-p6.pt --imgsz 640
  yolor-deploy export yolor_csp.pt --cfg yolor_csp --dynamic --nms onnx -o csp.onnx
  yolor-deploy export yolor-p6.pt --openvino       (also an OpenVINO IR: yolor-p6-640x640.xml/.bin)
  yolor-deploy export yolor-p6          (a registered variant with seeded random weights)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--imgsz", type=int, nargs="+", metavar="N",
                   help="export size, N or H W (default: the training size where the checkpoint or its opt.yaml "
                        "records it, else 640); rounded up to a multiple of the largest stride")
    p.add_argument("--batch", type=int, default=1, help="batch size of a static export (default 1)")
    p.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 11..20 (default 17)")
    p.add_argument("--simplify", action=argparse.BooleanOptionalAction, default=True,
                   help="simplify with onnxslim (default on)")
    p.add_argument("--half", action="store_true", help="fp16 weights and activations, fp32 inputs/outputs")
    p.add_argument("--nms", choices=["none", "onnx", "trt"], default="none",
                   help="NMS in the graph: none, onnx (NonMaxSuppression) or trt (EfficientNMS_TRT)")
    p.add_argument("--conf-thres", type=float, default=0.25, help="NMS score threshold (default 0.25)")
    p.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--no-fold", action="store_true", help="keep BN and implicit layers unfolded")
    p.add_argument("--no-verify", action="store_true", help="skip the verification against PyTorch")
    p.add_argument("--verify-image", default=None, help="image used in verification (default: bundled sample)")
    p.add_argument("--verify-openvino", action="store_true",
                   help="also verify the model in OpenVINO (CPU, f32) with the same rule (needs openvino)")
    p.add_argument("--openvino", action="store_true",
                   help="also write an OpenVINO IR (OUT.xml + OUT.bin, metadata in rt_info), verified in "
                        "OpenVINO with the same rule (needs openvino; not with --nms trt)")
    p.add_argument("--report", default=None, help="write the verification report as JSON here")
    p.add_argument("-o", "--output", default=None, help="output .onnx (default: next to the checkpoint)")


def default_output(checkpoint: str, imgsz: tuple[int, int], nms: str, dynamic: bool = False,
                   half: bool = False) -> Path:
    """NAME-HxW[-dynamic][-nms|-nms-trt][-fp16].onnx beside the checkpoint (quantize adds -int8); HxW is the
    size the model really has (after rounding to the stride), the default size of a dynamic one."""
    src = Path(checkpoint)
    stem = src.stem if src.suffix else src.name
    tail = ("-dynamic" if dynamic else "") + {"none": "", "onnx": "-nms", "trt": "-nms-trt"}[nms] + ("-fp16" * half)
    return (src.parent if src.suffix else Path(".")) / f"{stem}-{imgsz[0]}x{imgsz[1]}{tail}.onnx"


def run(args: argparse.Namespace) -> int:
    import logging

    from ..assets import sample_image
    from ..checkpoint import load_checkpoint
    from ..errors import VerificationError
    from ..export import ExportOptions, export_onnx
    from ..export.onnx_export import round_imgsz
    from ..nn.registry import VARIANTS, create_model
    from ..verify.table import report_table

    console = wide_console()
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    with console.status(f"loading {args.checkpoint} ..."):
        if args.checkpoint in VARIANTS and not Path(args.checkpoint).exists():
            console.print(f"[yellow]{args.checkpoint}: registered variant, seeded random weights (no download)[/]")
            model = create_model(args.checkpoint, seed=0)
        else:
            model = load_checkpoint(args.checkpoint, cfg=args.cfg)
    requested = imgsz_arg(args.imgsz)
    if args.imgsz is None:
        if model.train_imgsz:
            requested = model.train_imgsz
            console.print(f"size {requested[0]}x{requested[1]}: the training size ({model.train_imgsz_source}); "
                          f"--imgsz changes it")
        else:
            console.print("size 640x640: the checkpoint does not record its training size; --imgsz changes it")
    imgsz, notes = round_imgsz(requested, max(model.strides))
    for n in notes:
        console.print(f"[yellow]note: {n}[/]")
    out = (Path(args.output) if args.output
           else default_output(args.checkpoint, imgsz, args.nms, args.dynamic, args.half))
    opts = ExportOptions(imgsz=imgsz, batch=args.batch, dynamic=args.dynamic, opset=args.opset,
                         simplify=args.simplify, half=args.half, nms=args.nms, conf_thres=args.conf_thres,
                         iou_thres=args.iou_thres, max_det=args.max_det, fold=not args.no_fold,
                         verify=not args.no_verify, verify_image=args.verify_image or str(sample_image()),
                         verify_openvino=args.verify_openvino, openvino=args.openvino,
                         report=args.report)
    try:
        with console.status(f"exporting {args.checkpoint} ..."):
            result = export_onnx(model, out, options=opts)
    except VerificationError as e:
        if e.report is not None:
            console.print(report_table(e.report))
            failed = out.with_name(out.stem + ".failed.onnx")
            if failed.exists():
                console.print(f"find where it departs: yolor-deploy diff {args.checkpoint} {failed}"
                              + (f" --cfg {args.cfg}" if args.cfg else ""), soft_wrap=True)
        raise
    if result.report is not None:
        console.print(report_table(result.report))
        for line in result.report.not_checked():
            console.print(f"[yellow]not checked: {line}[/]")
        if not result.report.checked:
            console.print("[yellow]warning: verification inconclusive: no case could be checked (see above)[/]")
    folds = ", ".join(f"{k} {v}" for k, v in result.fold_counts.items()) or "none"
    console.print(f"folded: {folds}; ScatterND nodes: {result.op_types.get('ScatterND', 0)}")
    shape = "dynamic" if opts.dynamic else f"{opts.batch}x3x{opts.imgsz[0]}x{opts.imgsz[1]}"
    console.print(f"[green]saved {out}[/] ({out.stat().st_size / 1e6:.1f} MB, opset {opts.opset}, {shape}, "
                  f"nms {opts.nms})")
    if result.openvino_paths:
        xml, bin_ = result.openvino_paths
        console.print(f"[green]saved {xml}[/] + {bin_.name} (OpenVINO IR, {bin_.stat().st_size / 1e6:.1f} MB)")
    return 0
