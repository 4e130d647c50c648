"""The CPU's measured convolution peak per precision (fp32, bf16, int8): a micro-benchmark in OpenVINO, so that a
model's speed can be read as a fraction of what this CPU does on its best case (a large 3x3 convolution that fits
the kernels well), measured in the same run on the same threads.

The int8 case is a convolution between FakeQuantize ops (what NNCF writes), which OpenVINO's low-precision
transformations run as a u8 x i8 kernel; bf16 is the f32 model under the bf16 inference-precision hint, and only
where the CPU has native bf16 (else OpenVINO would run f32 and the figure would mean nothing). The kernel precision
OpenVINO really ran is read back from the compiled model and reported with each figure.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

CHANNELS, SIDE = 128, 80  # 2 x 128 x 128 x 9 x 80 x 80 = 1.89 GOPs per call: ~10-100 ms on a few cores


@dataclass(frozen=True)
class Peak:
    """`gops`: best-of-rounds billions of ops/s (2 per multiply-accumulate), None when not measurable (`why`);
    `kernel`: the precision OpenVINO ran the convolution in."""

    precision: str
    gops: float | None
    kernel: str = ""
    why: str = ""


def conv_gops() -> float:
    return 2 * CHANNELS * CHANNELS * 9 * SIDE * SIDE / 1e9


def _model(ov, int8: bool):
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, CHANNELS, SIDE, SIDE], np.float32, name="x")
    w = ops.constant(rng.standard_normal((CHANNELS, CHANNELS, 3, 3)).astype(np.float32) * 0.05)
    a, b = x.output(0), w.output(0)
    if int8:
        lo, hi = ops.constant(np.float32(0)), ops.constant(np.float32(4))
        a = ops.fake_quantize(a, lo, hi, lo, hi, 256).output(0)
        wl, wh = ops.constant(np.float32(-0.2)), ops.constant(np.float32(0.2))
        b = ops.fake_quantize(b, wl, wh, wl, wh, 255).output(0)
    conv = ops.convolution(a, b, [1, 1], [1, 1], [1, 1], [1, 1])
    return ov.Model([conv], [x], "peak-conv")


def _kernel(compiled) -> str:
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if str(info["layerType"].astype(str)) == "Convolution":
            return str(info["runtimePrecision"].astype(str))
    return "?"


def measure_peak(precision: str, threads: int, seconds: float = 1.0) -> Peak:
    """One precision's convolution peak on `threads` threads (latency hint, one stream)."""
    from ..formats.openvino_ir import import_openvino

    ov = import_openvino()
    core = ov.Core()
    caps = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if precision == "bf16" and "BF16" not in caps:
        return Peak(precision, None, why="no native bf16 on this CPU")
    compiled = core.compile_model(_model(ov, precision == "int8"), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32", "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": int(threads), "ENABLE_CPU_PINNING": False})
    kernel = _kernel(compiled)
    request = compiled.create_infer_request()
    x = np.random.default_rng(1).uniform(0, 4, (1, CHANNELS, SIDE, SIDE)).astype(np.float32)
    request.infer({0: x})
    best, end = float("inf"), time.perf_counter() + seconds
    for k in range(1000):
        t0 = time.perf_counter()
        request.infer({0: x})
        best = min(best, time.perf_counter() - t0)
        if k >= 3 and time.perf_counter() > end:
            break
    return Peak(precision, conv_gops() / best, kernel)


def measure_peaks(threads: int, seconds: float = 1.0) -> dict[str, Peak]:
    """{"fp32", "bf16", "int8"}: `measure_peak` of each."""
    return {p: measure_peak(p, threads, seconds) for p in ("fp32", "bf16", "int8")}
