"""`yolor-deploy val`: COCO mAP of a model on a folder of images with YOLO txt labels."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_backend_arguments, add_inference_size_argument, runtime_hint

HELP = "measure COCO mAP@0.5 and mAP@0.5:0.95 on images with YOLO txt labels"
DESCRIPTION = """\
Measure the accuracy of an ONNX model (no PyTorch needed) or a checkpoint on a folder of images
whose labels are YOLO txt files (LABELS/STEM.txt, one 'cls cx cy w h' line per object, normalised;
an image without a label file has no objects). Inference goes through the same Detector as
predict; defaults are upstream test.py's (conf 0.001, iou 0.65, multi-label NMS, at most 300
detections); mAP is computed by pycocotools on the boxes scaled back to the original images.

--json OUT writes the metrics (mAP, per-class AP, counts, settings); --save-pred OUT writes the
detections as COCO results (image_id, category_id, bbox xywh, score), as test.py --save-json.

examples:
  yolor-deploy val model.onnx --images data/val/images --labels data/val/labels --imgsz 256
  yolor-deploy val yolor_p6.pt --cfg yolor_p6 --images imgs --labels labels --json metrics.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model: .onnx export or .pt checkpoint")
    p.add_argument("--images", required=True, type=Path, help="folder of images (not recursive)")
    p.add_argument("--labels", required=True, type=Path, help="folder of YOLO txt labels, one per image stem")
    add_inference_size_argument(p)
    p.add_argument("--conf-thres", type=float, default=0.001, help="score threshold (default 0.001)")
    p.add_argument("--iou-thres", type=float, default=0.65, help="NMS IoU threshold (default 0.65)")
    p.add_argument("--max-det", type=int, default=300, help="detections per image at most (default 300)")
    p.add_argument("--batch", type=int, default=1, help="images per inference call (default 1)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the metrics as JSON")
    p.add_argument("--save-pred", type=Path, default=None, metavar="OUT",
                   help="write the detections as a COCO results JSON")
    p.add_argument("--verbose", action="store_true", help="also print pycocotools' 12-line summary")
    add_backend_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..eval import evaluate
    from ..fs import write_json
    from ..runtime import Detector
    from ._common import progress_bar, warnings_to_stderr, working

    if args.batch < 1:
        raise InputError(f"--batch must be at least 1, got {args.batch}")
    for out in (args.json, args.save_pred):  # fail before the long part, not after it
        if out is not None and out.is_dir():
            raise InputError(f"{out}: is a folder; give a file name for the JSON output")
    with warnings_to_stderr():
        with working(f"loading {args.model} ..."):
            det = Detector(args.model, providers=args.providers, conf_thres=args.conf_thres,
                           iou_thres=args.iou_thres, max_det=args.max_det, imgsz=args.imgsz,
                           batch_size=args.batch, threads=args.threads, cfg=args.cfg, backend=args.backend,
                           hint=runtime_hint(args, args.model))
        preds: list[dict] | None = [] if args.save_pred else None
        with progress_bar("val") as bar:
            task = bar.add_task("val", total=None)

            def advance(n: int, total: int) -> None:
                bar.update(task, advance=n, total=total)

            metrics = evaluate(det, args.images, args.labels, progress=advance, results_out=preds)
    _print_report(det, metrics, args.verbose)
    for path, doc in ((args.json, metrics.to_dict()), (args.save_pred, preds)):
        if path is not None:
            try:
                write_json(path, doc, indent=1 if path == args.json else None)
            except OSError as e:
                raise InputError(f"{path}: cannot write ({e.strerror or e})") from None
            print(f"wrote {path}")
    return 0


def _print_report(det, metrics, verbose: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    def fmt(v: float) -> str:
        return "-" if v != v else f"{v:.3f}"  # NaN: a class without ground truth

    size = f"{det.imgsz[0]}x{det.imgsz[1]}{f' (pad to x{det.pad_multiple})' if det.auto else ''}"
    table = Table(title="val", show_header=True)
    for col, justify in (("class", "left"), ("instances", "right"), ("detections", "right"),
                         ("AP@0.5", "right"), ("AP@0.5:0.95", "right")):
        table.add_column(col, justify=justify)
    table.add_row("all", str(int(metrics.instances.sum())), str(int(metrics.detections.sum())),
                  fmt(metrics.map50), fmt(metrics.map), end_section=True)
    for row in metrics.per_class():
        table.add_row(escape(row["class_name"]), str(row["instances"]), str(row["detections"]),
                      fmt(metrics.ap50[row["class_id"]]), fmt(metrics.ap[row["class_id"]]))
    console = Console()
    console.print(table)
    print(f"backend: {det.backend.name}; input {size}; conf {det.conf_thres:g}, iou {det.iou_thres:g}, "
          f"max_det {det.max_det}")
    print(f"images: {metrics.images} ({metrics.background_images} without objects)")
    print(f"mAP@0.5 {metrics.map50:.4f}  mAP@0.5:0.95 {metrics.map:.4f}")
    if verbose and metrics.summary:
        print(metrics.summary)
