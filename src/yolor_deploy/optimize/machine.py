"""What this machine can run fast: CPU ISA (as oneDNN will use it), ONNX Runtime providers, OpenVINO.

`ONEDNN_MAX_CPU_ISA` caps what oneDNN (hence OpenVINO's CPU plugin) uses, whatever the CPU has: with
`ONEDNN_MAX_CPU_ISA=AVX2` an AVX-512 machine is treated as AVX2-only (no VNNI, no bf16), which is how
an AVX2 box is emulated here. ONNX Runtime's own kernels (MLAS) ignore that variable.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..sysinfo import cpu_line, cpu_model_and_flags

# oneDNN's ISA levels, lowest first (ONEDNN_MAX_CPU_ISA values)
ISA_LEVELS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
              "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
              "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16")


@dataclass(frozen=True)
class Machine:
    """`flags`: the CPU's ISA flags; `isa_cap`: ONEDNN_MAX_CPU_ISA when set; `providers`: ONNX Runtime's
    available execution providers; `openvino`: OpenVINO and NNCF importable."""

    cpu: str
    flags: frozenset[str]
    isa_cap: str | None
    providers: tuple[str, ...]
    openvino: bool

    def _allowed(self, level: str) -> bool:
        cap = (self.isa_cap or "").upper()
        return cap not in ISA_LEVELS or ISA_LEVELS.index(cap) >= ISA_LEVELS.index(level)

    @property
    def bf16(self) -> bool:
        """Native bf16 dot products (AVX512_BF16 or AMX) that oneDNN may use."""
        has = bool({"avx512_bf16", "amx_bf16"} & self.flags)
        return has and self._allowed("AVX512_CORE_BF16")

    @property
    def vnni(self) -> bool:
        """int8 dot products (AVX512_VNNI, or AVX-VNNI on AVX2 cores) that oneDNN may use."""
        return (("avx512_vnni" in self.flags and self._allowed("AVX512_CORE_VNNI"))
                or ("avx_vnni" in self.flags and self._allowed("AVX2_VNNI")))

    @property
    def gpu(self) -> bool:
        return "CUDAExecutionProvider" in self.providers

    def has(self, need: str) -> bool:
        return {"bf16": self.bf16, "gpu": self.gpu, "openvino": self.openvino, "vnni": self.vnni}[need]

    def why_not(self, need: str) -> str:
        """One line: why this machine lacks `need`."""
        capped = f", capped by ONEDNN_MAX_CPU_ISA={self.isa_cap}" if self.isa_cap else ""
        return {"bf16": f"the CPU has no native bf16 (avx512_bf16/amx_bf16){capped}",
                "vnni": f"the CPU has no int8 dot products (VNNI){capped}",
                "gpu": "no GPU execution provider in this onnxruntime (CUDA)",
                "openvino": "OpenVINO/NNCF not installed (pip install 'yolor-deploy[openvino]')"}[need]

    def summary(self) -> str:
        caps = [c for c in ("vnni", "bf16", "gpu", "openvino") if self.has(c)]
        return f"{self.cpu}; can use: {', '.join(caps) or 'fp32 only'}"


def detect_machine() -> Machine:
    import onnxruntime as ort

    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
        have_ov = True
    except ImportError:
        have_ov = False
    _, flags = cpu_model_and_flags()
    return Machine(cpu=cpu_line(), flags=frozenset(flags), isa_cap=os.environ.get("ONEDNN_MAX_CPU_ISA"),
                   providers=tuple(ort.get_available_providers()), openvino=have_ov)
