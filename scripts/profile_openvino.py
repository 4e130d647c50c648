"""Where OpenVINO spends the time of a YOLOR inference: per-layer performance counters of the fp32, bf16 (where
the CPU has it) and NNCF int8 models, grouped by layer type and by the kernel that ran it, in one run.

Answers "what keeps int8/bf16 far from the CPU's peak": the share of convolutions (and which kernels: a
`jit_*_I8` / `brgconv_*_I8` kernel is int8 on VNNI/AMX, `ref_*` is OpenVINO's slow reference path), reorders
and layout conversions, element-wise layers left unfused, and the box decode + the rest of the float tail, with
the convolutions' achieved GOP/s against the model's own operation count.

The models: `yolor-deploy`'s export of a registered variant with seeded random weights (default yolor-p6 @640;
well-conditioned, so int8 calibration sees realistic ranges) and its NNCF int8 IR made by `quantize`
(calibrated on the bundled images), cached in --cache.

usage:
  python scripts/profile_openvino.py                       # yolor-p6 @640, 20 timed inferences each
  python scripts/profile_openvino.py --imgsz 320 --runs 10 # quicker
  ONEDNN_MAX_CPU_ISA=AVX2 python scripts/profile_openvino.py   # as on an AVX2-only CPU
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="yolor-p6", help="registered variant (default yolor-p6)")
    p.add_argument("--imgsz", type=int, default=640, help="square export size (default 640)")
    p.add_argument("--runs", type=int, default=20, help="timed inferences per model (default 20)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (default: OpenVINO's choice)")
    p.add_argument("--top", type=int, default=12, help="rows of the per-kernel table (default 12)")
    p.add_argument("--cache", type=Path, default=Path("/tmp/profile-cache"), help="where the models are cached")
    return p.parse_args(argv)


def models(args) -> tuple[Path, Path]:
    """(fp32 ONNX, NNCF int8 IR), made once into --cache."""
    from yolor_deploy.assets import sample_image, val_images
    from yolor_deploy.export import export_onnx
    from yolor_deploy.nn.registry import create_model
    from yolor_deploy.quantize import quantize_onnx

    args.cache.mkdir(parents=True, exist_ok=True)
    fp32 = args.cache / f"{args.variant}-{args.imgsz}.onnx"
    if not fp32.is_file():
        print(f"exporting {args.variant} @{args.imgsz} (once) ...", file=sys.stderr)
        export_onnx(create_model(args.variant, seed=0).float().eval(), fp32, imgsz=(args.imgsz, args.imgsz),
                    opset=17, verify=False)
    int8 = args.cache / f"{args.variant}-{args.imgsz}-int8.xml"
    if not int8.is_file():
        print("quantizing with NNCF (once) ...", file=sys.stderr)
        quantize_onnx(fp32, int8, [str(sample_image()), str(val_images())], backend="openvino", calib_size=8)
    return fp32, int8


def conv_gops(onnx_path: Path) -> float:
    """Multiply-adds x 2 of every Conv in the fp32 graph at its static input shape, in GOP."""
    import onnx
    from onnx import shape_inference

    m = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)}
    weights = {t.name: list(t.dims) for t in m.graph.initializer}
    ops = 0.0
    for n in m.graph.node:
        if n.op_type == "Conv" and n.input[1] in weights and n.output[0] in shapes:
            co, ci_g, kh, kw = weights[n.input[1]]
            out = shapes[n.output[0]]
            if len(out) == 4 and all(out):
                ops += 2.0 * out[0] * co * out[2] * out[3] * ci_g * kh * kw
    return ops / 1e9


def profile(core, model_path: Path, config: dict, runs: int):
    """(median ms of a whole inference, [(node_type, exec_type, name, real_time_ms)] of the median run)."""
    compiled = core.compile_model(str(model_path), "CPU", {**config, "PERF_COUNT": True})
    req = compiled.create_infer_request()
    port = compiled.input(0)
    x = np.random.default_rng(0).random(tuple(port.get_partial_shape().to_shape()), dtype=np.float32)
    for _ in range(3):
        req.infer({0: x})
    times, infos = [], []
    for _ in range(runs):
        t = time.perf_counter()
        req.infer({0: x})
        times.append((time.perf_counter() - t) * 1e3)
        infos.append([(p.node_type, p.exec_type, p.node_name, p.real_time.total_seconds() * 1e3)
                      for p in req.get_profiling_info()])
    mid = int(np.argsort(times)[len(times) // 2])
    return float(np.median(times)), infos[mid]


def kernel_family(exec_type: str) -> str:
    e = exec_type.lower()
    precision = e.rsplit("_", 1)[-1] if "_" in e else e
    if e.startswith("ref"):
        return f"ref (reference) {precision}"
    for name in ("brgconv", "brgemm", "jit", "gemm", "acl", "undef", "unknown"):
        if name in e:
            return f"{name} {precision}"
    return e


def summarise(label: str, total_ms: float, rows, gops: float, top: int) -> None:
    by_type: dict[str, float] = defaultdict(float)
    by_kernel: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for node_type, exec_type, _name, ms in rows:
        by_type[node_type] += ms
        k = by_kernel[(node_type, kernel_family(exec_type))]
        k[0] += ms
        k[1] += 1
    layers = sum(by_type.values())
    conv = sum(v for t, v in by_type.items() if "Convolution" in t)
    reorder = by_type.get("Reorder", 0.0)
    ref = sum(v[0] for (t, k), v in by_kernel.items() if k.startswith("ref"))
    print(f"\n{label}: {total_ms:.1f} ms per inference (median), layers sum {layers:.1f} ms; "
          f"convolutions {100 * conv / layers:.0f} % ({gops / (conv / 1e3):.0f} GOP/s on their {gops:.1f} GOP), "
          f"reorders {100 * reorder / layers:.0f} %, reference kernels {100 * ref / layers:.0f} %")
    print(f"  {'layer type':<24} {'kernel':<26} {'layers':>6} {'ms':>8} {'share':>6}")
    for (t, k), (ms, n) in sorted(by_kernel.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {t:<24} {k:<26} {int(n):>6} {ms:>8.2f} {100 * ms / layers:>5.1f}%")


def main(argv=None) -> int:
    import openvino as ov

    from yolor_deploy.sysinfo import cpu_line

    args = parse_args(argv)
    fp32, int8 = models(args)
    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    base = {"PERFORMANCE_HINT": "LATENCY", **({"INFERENCE_NUM_THREADS": args.threads} if args.threads else {})}
    gops = conv_gops(fp32)
    print(f"{args.variant} @{args.imgsz}, batch 1; OpenVINO {ov.get_version()}; {cpu_line()}")
    print(f"CPU capabilities (OpenVINO): {' '.join(caps)}")
    runs = [("fp32", fp32, {"INFERENCE_PRECISION_HINT": "f32"}), ("int8 (NNCF), f32 rest", int8,
                                                                 {"INFERENCE_PRECISION_HINT": "f32"})]
    if "BF16" in caps:
        runs[1:1] = [("bf16", fp32, {"INFERENCE_PRECISION_HINT": "bf16"})]
        runs.append(("int8 (NNCF), bf16 rest", int8, {"INFERENCE_PRECISION_HINT": "bf16"}))
    else:
        print("no bf16 on this CPU: bf16 rows left out")
    for label, path, cfg in runs:
        ms, rows = profile(core, path, {**base, **cfg}, args.runs)
        summarise(label, ms, rows, gops, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
