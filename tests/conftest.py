"""pytest hooks and autouse fixtures only; shared helpers live in the `helpers` package."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _torch_threads():
    """Run every test with 2 intra-op threads and restore afterwards: the upstream references were
    made with 2 threads, and conv accumulation order (hence the last bits) depends on the count."""
    try:
        import torch
    except ImportError:  # torch-free test environments
        yield
        return
    from yolor_deploy.nn.decode import Decode

    before, decode = torch.get_num_threads(), Decode.forward
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
    # export-time rewrites must never leak out of their context into eager models
    assert Decode.forward is decode, "Decode.forward was left patched"


def pytest_report_header(config):
    """The CPU and its ISA flags beside every number the tests print (fp32 results depend on them)."""
    import platform

    name, flags = platform.processor() or "?", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    isa = [f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "avx_vnni")]
    env = " ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ)
    return [f"cpu: {name}, {os.cpu_count()} cores; isa: {' '.join(isa) or 'baseline'}" + (f"; {env}" if env else "")]
