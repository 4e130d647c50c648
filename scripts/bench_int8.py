"""ONNX Runtime fp32 vs static int8 (QDQ, `yolor_deploy.quantize`) latency, interleaved in one run;
with --openvino also OpenVINO fp32 (the same ONNX file) and OpenVINO int8 (NNCF IR).

Builds a registered variant with seeded random weights, exports it (opset 17, static, no NMS),
quantizes it calibrated on the bundled sample image plus seeded noise images, then times the
models on the same letterboxed sample image, alternating fp32, int8, fp32, ... after a warmup.
Prints median/p90 per model and the ratios of the medians to ORT fp32 (< 1: faster).
Random weights: these are speed figures only (accuracy needs a trained model; see tests/quantize/test_quantize.py).

usage:
  python scripts/bench_int8.py                          # yolor-p6 @640, 10 runs, 2 threads
  python scripts/bench_int8.py yolor-ssss-s2d --imgsz 320 --runs 20
  python scripts/bench_int8.py --openvino               # + OpenVINO fp32 and NNCF int8
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variant", nargs="?", default="yolor-p6", help="registered variant (default yolor-p6)")
    p.add_argument("--imgsz", type=int, default=640, help="square export size (default 640)")
    p.add_argument("--runs", type=int, default=10, help="timed runs per model (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per model first (default 2)")
    p.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (default 2)")
    p.add_argument("--noise", type=int, default=3, help="noise images added to the calibration set (default 3)")
    p.add_argument("--method", default="minmax", choices=["minmax", "percentile"], help="calibration method")
    p.add_argument("--openvino", action="store_true", help="also time OpenVINO fp32 and NNCF int8")
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1 or args.noise < 0:
        p.error("--runs and --threads must be >= 1, --warmup and --noise >= 0")
    return args


def build_models(args, d: Path) -> tuple[dict[str, Path], float]:
    """({name: model path}, quantization seconds)."""
    import cv2

    from yolor_deploy.assets import sample_image
    from yolor_deploy.export import export_onnx
    from yolor_deploy.nn.registry import create_model
    from yolor_deploy.quantize.ort_qdq import quantize_onnx

    model = create_model(args.variant, seed=0).float().eval()
    paths = {"fp32": d / "fp32.onnx", "int8": d / "int8.onnx"}
    export_onnx(model, paths["fp32"], imgsz=(args.imgsz, args.imgsz), opset=17, verify=False)
    rng = np.random.default_rng(0)
    calib = [str(sample_image())]
    for i in range(args.noise):
        path = d / f"noise{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (args.imgsz, args.imgsz, 3), dtype=np.uint8))
        calib.append(str(path))
    seconds = quantize_onnx(paths["fp32"], paths["int8"], calib, method=args.method).seconds
    if args.openvino:
        paths["openvino fp32"] = paths["fp32"]
        paths["openvino int8"] = d / "int8-ov.xml"
        seconds += quantize_onnx(paths["fp32"], paths["openvino int8"], calib, backend="openvino").seconds
    return paths, seconds


class OpenVINORunner:
    """An OpenVINO model with the `run(None, feeds)` face of an ORT session (f32 precision, N threads)."""

    def __init__(self, path: Path, threads: int):
        from yolor_deploy.runtime.backends.openvino import OpenVINOBackend

        self.backend = OpenVINOBackend(path, threads=threads)

    def run(self, _names, feeds):
        return self.backend(feeds["images"])


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no spinning into the other model's turn
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    import onnxruntime as ort

    from yolor_deploy.assets import sample_image
    from yolor_deploy.runtime import Detector, read_image

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-int8.") as tmp:
        d = Path(tmp)
        paths, q_s = build_models(args, d)
        sizes = {k: (p.with_suffix(".bin") if p.suffix == ".xml" else p).stat().st_size for k, p in paths.items()}
        x = Detector(paths["fp32"]).preprocess([read_image(sample_image())])[0].tensor
        sess = {k: OpenVINORunner(p, args.threads) if k.startswith("openvino") else session(p, args.threads)
                for k, p in paths.items()}
        samples: dict[str, list[float]] = {k: [] for k in sess}
        for r in range(args.warmup + args.runs):
            for k, s in sess.items():
                t0 = time.perf_counter()
                s.run(None, {"images": x})
                if r >= args.warmup:
                    samples[k].append(time.perf_counter() - t0)
    med = {k: 1000 * float(np.median(v)) for k, v in samples.items()}
    p90 = {k: 1000 * float(np.percentile(v, 90)) for k, v in samples.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.variant} @{args.imgsz}, batch 1, {args.threads} threads, onnxruntime {ort.__version__}, "
          f"{args.runs} runs interleaved, load average {load:.1f}; int8 calibrated ({args.method}) on "
          f"1 sample + {args.noise} noise images in {q_s:.1f} s")
    for k in sess:
        print(f"  {k}: median {med[k]:.1f} ms  p90 {p90[k]:.1f} ms  file {sizes[k] / 1e6:.1f} MB")
    print(f"ratio int8/fp32 (median latency): {med['int8'] / med['fp32']:.3f} "
          f"({med['fp32'] / med['int8']:.2f}x faster)")
    for k in ("openvino fp32", "openvino int8"):
        if k in med:
            print(f"ratio {k}/fp32 (median latency, fp32 = ONNX Runtime): {med[k] / med['fp32']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
