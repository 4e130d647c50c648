"""`yolor-deploy demo`: the main job end to end on a built-in default."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "load the bundled trained YOLOR, export + verify it, and detect objects in a sample image"
DESCRIPTION = """\
The whole pipeline on a built-in default, with nothing to download:
  1. load the bundled trained checkpoint safely (a real YOLOR in upstream's released paper-branch format:
     pickled model, fp16; 3 classes circle/square/triangle), without the upstream repository;
  2. export it to ONNX and verify it against PyTorch (the file is written only if it is faithful);
  3. run `predict` with the ONNX model on the bundled sample image and 20 labelled images (boxes on
     every shape);
  4. run `val` on those 20 labelled images: COCO mAP@0.5 and mAP@0.5:0.95 (needs pycocotools).

--variant NAME builds a registered full-size variant with seeded random weights instead: such a network
ignores its input, so verification reports it "not checked" and its detections mean nothing.

examples:
  yolor-deploy demo
  yolor-deploy demo --out runs/demo2 --imgsz 416
  yolor-deploy demo --variant yolor_csp --imgsz 416
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default=None,
                   help="instead of the trained model, a registered variant with random weights: yolor-p6, "
                        "yolor-w6, yolor-e6, yolor-d6, yolor-ssss-s2d, yolor-ssss-dwt, yolor_p6, yolor_w6, "
                        "yolor_csp, yolor_csp_x")
    p.add_argument("--imgsz", type=int, default=None, help="export size (default 320; 640 with --variant)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--conf-thres", type=float, default=0.25, help="predict score threshold (default 0.25)")


def run(args: argparse.Namespace) -> int:
    from ..assets import sample_image, trained_checkpoint, val_images, val_labels
    from ..checkpoint import save_checkpoint
    from ..errors import ConfigError
    from ..export import ExportOptions, export_onnx
    from ..nn.registry import VARIANTS, create_model
    from ..verify.table import report_table
    from ._common import wide_console
    from .main import main as cli_main

    if args.variant is not None and args.variant not in VARIANTS:
        raise ConfigError(f"{args.variant}: not a registered variant ({', '.join(VARIANTS)})")
    console = wide_console()
    steps = demo_steps(args.variant)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.variant is None:
        imgsz, name = args.imgsz or 320, "shapes-ssss-w025"
        ckpt = trained_checkpoint()
        console.rule(steps[0])
    else:
        imgsz, name = args.imgsz or 640, args.variant
        console.rule(steps[0])
        ckpt = save_checkpoint(create_model(args.variant, seed=0), out / f"{args.variant}.pt")
    console.print(f"checkpoint: {ckpt}")
    console.rule(steps[1])
    onnx_path = out / f"{name}-{imgsz}x{imgsz}.onnx"
    report = out / "verify-report.json"
    with console.status("exporting and verifying ..."):
        result = export_onnx(ckpt, onnx_path, options=ExportOptions(
            imgsz=(imgsz, imgsz), verify_image=str(sample_image()), report=str(report)))
    console.print(report_table(result.report))
    for line in result.report.not_checked():
        console.print(f"[yellow]not checked: {line}[/]")
    console.print(f"onnx: {onnx_path}   report: {report}   verification: {result.report.status}")
    console.rule(steps[2])
    save_dir = out / "predict"
    images = [str(sample_image())] + ([str(val_images())] if args.variant is None else [])
    rc = cli_main(["predict", str(onnx_path), *images, "--save-dir", str(save_dir), "--save-json", "-q",
                   "--conf-thres", str(args.conf_thres)])
    metrics = out / "val.json"
    if rc == 0 and args.variant is None:
        console.rule(steps[3])
        try:
            import pycocotools  # noqa: F401
        except ImportError:
            console.print("[yellow]val skipped: needs pycocotools (pip install 'yolor-deploy[eval]')[/]")
        else:
            rc = cli_main(["val", str(onnx_path), "--images", str(val_images()), "--labels", str(val_labels()),
                           "--json", str(metrics)])
    console.rule("done")
    console.print(f"checkpoint  {ckpt}\nonnx        {onnx_path}\nreport      {report}\npredictions {save_dir}"
                  + (f"\nmAP         {metrics}" if metrics.exists() else ""), soft_wrap=True)
    return rc


def demo_steps(variant: str | None) -> list[str]:
    """The titles of the demo's steps, numbered "i/n": the bundled trained model also runs val (4 steps), a
    random-weight variant has no labels to score (3 steps)."""
    first = ("the bundled trained YOLOR (upstream released format, loaded safely)" if variant is None
             else f"build {variant} (seeded random weights: no download possible here)")
    titles = [first, "export to ONNX and verify against PyTorch", "predict on the bundled images"]
    if variant is None:
        titles.append("val on the 20 labelled images")
    return [f"{i}/{len(titles)} {t}" for i, t in enumerate(titles, 1)]
