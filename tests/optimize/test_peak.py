"""`optimize.peak`: the CPU's convolution peak per precision, measured in OpenVINO, with the kernel it really ran."""
from __future__ import annotations

import pytest

pytest.importorskip("openvino", reason="machine: the optimize extra (OpenVINO) is not installed")

from yolor_deploy.optimize.peak import conv_gops, measure_peak  # noqa: E402


def test_fp32_and_int8_peaks_are_measured_on_their_own_kernels():
    fp32 = measure_peak("fp32", threads=1, seconds=0.2)
    int8 = measure_peak("int8", threads=1, seconds=0.2)
    assert conv_gops() == pytest.approx(2 * 128 * 128 * 9 * 80 * 80 / 1e9)
    assert fp32.kernel == "f32" and fp32.gops is not None and 1 < fp32.gops < 10_000
    # the FakeQuantize pair made OpenVINO run the convolution itself in 8 bits (not f32 around a dequantize)
    assert int8.kernel in ("u8", "i8") and int8.gops is not None and 1 < int8.gops < 100_000
    print(f"1 thread: fp32 {fp32.gops:.1f} GOPS, int8 {int8.gops:.1f} GOPS ({int8.kernel})")


def test_bf16_is_measured_only_where_the_cpu_has_it():
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    bf16 = measure_peak("bf16", threads=1, seconds=0.2)
    if "BF16" in caps:
        assert bf16.kernel == "bf16" and bf16.gops and bf16.gops > 1
    else:
        assert bf16.gops is None and bf16.why == "no native bf16 on this CPU"
