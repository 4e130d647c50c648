"""`yolor-deploy quantize`: fp32 ONNX export -> ONNX Runtime static int8 (QDQ), calibrated on real images."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "quantize an ONNX export to int8 (ONNX Runtime QDQ, or OpenVINO IR via NNCF), calibrated on images"
DESCRIPTION = """\
Quantize an fp32 ONNX export (opset 13 or higher) to int8 with ONNX Runtime's static QDQ
quantization: int8 weights (per output channel by default), uint8 activations whose ranges are
calibrated on real images, preprocessed as the runtime does (letterbox to the model's size, RGB,
/255). The box decode, any NMS graph and the head convolutions' outputs stay float (quantizing the
decode destroys the boxes). The metadata is kept, with "quantized": "int8-qdq" added.

Use the int8 model with ONNX Runtime (`predict`, `val`, `bench` take it as any .onnx). It is not
meant for OpenVINO (it crashed compiling ORT's QDQ file) nor TensorRT: for OpenVINO use
--backend openvino, which quantizes with OpenVINO's own NNCF (same calibration batches, the decode
kept float) and writes an IR, MODEL-int8.xml + .bin. On yolor-p6 @640 (2 cores, AVX2) the ORT int8
model ran 1.9x faster than fp32 (scripts/bench_int8.py). Check accuracy on your data with
--val-images/--val-labels: mAP of the fp32 and int8 models side by side.

examples:
  yolor-deploy quantize yolor-p6-640x640.onnx --calib data/val/images --calib-size 64
  yolor-deploy quantize model.onnx --calib imgs/ -o model-int8.onnx --val-images imgs --val-labels labels
  yolor-deploy quantize model.onnx --calib imgs/ --backend openvino     (model-int8.xml + .bin)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="fp32 .onnx made by `yolor-deploy export` (opset >= 13)")
    p.add_argument("--calib", nargs="+", required=True, metavar="SOURCE",
                   help="calibration images: files, folders (not recursive) or globs")
    p.add_argument("--calib-size", type=int, default=32, metavar="N",
                   help="calibration images at most, evenly spaced over the sources (default 32)")
    p.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True,
                   help="int8 weights per output channel (default on)")
    p.add_argument("--method", choices=["minmax", "percentile"], default="minmax",
                   help="activation ranges: min/max, or the 99.999th percentile (default minmax)")
    p.add_argument("--backend", choices=["onnxruntime", "openvino"], default="onnxruntime",
                   help="the runtime the int8 model is for: onnxruntime (QDQ .onnx, default) or openvino "
                        "(NNCF, IR .xml + .bin; needs yolor-deploy[openvino])")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="output .onnx, or .xml for openvino (default: MODEL-int8.onnx / MODEL-int8.xml)")
    p.add_argument("--val-images", type=Path, default=None, metavar="DIR",
                   help="after quantizing, measure mAP of fp32 and int8 on these images")
    p.add_argument("--val-labels", type=Path, default=None, metavar="DIR", help="YOLO txt labels for --val-images")


def default_output(model: Path, backend: str = "onnxruntime") -> Path:
    return model.with_name(f"{model.stem}-int8{'.xml' if backend == 'openvino' else '.onnx'}")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..quantize import QuantizeOptions, evaluate_pair, quantize_onnx
    from ._common import warnings_to_stderr, wide_console

    if (args.val_images is None) != (args.val_labels is None):
        raise InputError("--val-images and --val-labels go together")
    for d in (args.val_images, args.val_labels):  # fail before the long part, not after it
        if d is not None and not d.is_dir():
            raise InputError(f"{d}: no such folder")
    out = args.output or default_output(args.model, args.backend)
    opts = QuantizeOptions(calib_size=args.calib_size, per_channel=args.per_channel, method=args.method,
                           backend=args.backend)
    console = wide_console()
    with warnings_to_stderr():
        with console.status(f"quantizing {args.model} ..."):
            res = quantize_onnx(args.model, out, args.calib, opts)
        for note in res.warnings:
            console.print(f"[yellow]warning: {note}[/]", highlight=False)
        q = res.metadata.quantization or {}
        ops = res.op_types
        if args.backend == "openvino":
            console.print(f"calibrated on {q['calibration_images']} image(s) (NNCF); {ops.get('FakeQuantize', 0)} "
                          f"FakeQuantize; {len(res.float_nodes)} decode/NMS nodes kept float", highlight=False)
            console.print(f"[green]saved {out}[/] + {out.with_suffix('.bin').name} ({res.bytes_out / 1e6:.1f} MB "
                          f"weights, fp32 ONNX {res.bytes_in / 1e6:.1f} MB; OpenVINO int8) in {res.seconds:.1f} s",
                          highlight=False)
        else:
            console.print(f"calibrated on {q['calibration_images']} image(s) ({args.method}); "
                          f"{ops.get('QuantizeLinear', 0)} QuantizeLinear, {ops.get('DequantizeLinear', 0)} "
                          f"DequantizeLinear; {len(res.float_nodes)} decode/NMS nodes kept float", highlight=False)
            console.print(f"[green]saved {out}[/] ({res.bytes_out / 1e6:.1f} MB, fp32 {res.bytes_in / 1e6:.1f} MB; "
                          f"int8 QDQ, per-channel {'on' if args.per_channel else 'off'}) in {res.seconds:.1f} s",
                          highlight=False)
        if args.val_images is not None:
            with console.status("measuring mAP of fp32 and int8 ..."):
                m32, m8 = evaluate_pair(args.model, out, args.val_images, args.val_labels)
            _print_val(console, m32, m8)
    return 0


def _print_val(console, m32, m8) -> None:
    from rich.table import Table

    t = Table(title=f"val ({m32.images} images, imgsz {'x'.join(map(str, m32.settings['imgsz']))})")
    for col in ("model", "mAP@0.5", "mAP@0.5:0.95"):
        t.add_column(col, justify="left" if col == "model" else "right")
    t.add_row("fp32", f"{m32.map50:.4f}", f"{m32.map:.4f}")
    t.add_row("int8", f"{m8.map50:.4f}", f"{m8.map:.4f}")
    t.add_row("int8 - fp32", f"{m8.map50 - m32.map50:+.4f}", f"{m8.map - m32.map:+.4f}")
    console.print(t)
    print(f"mAP@0.5 fp32 {m32.map50:.4f} int8 {m8.map50:.4f}; mAP@0.5:0.95 fp32 {m32.map:.4f} int8 {m8.map:.4f}")
