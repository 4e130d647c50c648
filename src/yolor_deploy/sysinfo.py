"""The CPU a number was measured on: fp32 results and speed depend on it, so every published number
(benchmarks, verification margins, test headers) prints this beside it."""
from __future__ import annotations

import os
import platform
from pathlib import Path

ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    name, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    return name, flags


def cpu_line() -> str:
    """e.g. 'AMD EPYC, 2 cores, ISA avx2 fma avx512f ...' plus any ISA-pinning environment variables."""
    name, flags = cpu_model_and_flags()
    isa = [f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "avx_vnni")]
    env = " ".join(f"{k}={os.environ[k]}" for k in ISA_ENV if k in os.environ)
    return f"{name}, {os.cpu_count()} cores, ISA {' '.join(isa) or 'baseline'}" + (f"; {env}" if env else "")
