"""Shared test helpers: paths to ../shared fixtures (data made by the upstream code)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
def _find_shared() -> Path:
    """The project's shared data (upstream-made fixtures): $YOLOR_SHARED, ../shared, or /work/shared."""
    for cand in (os.environ.get("YOLOR_SHARED"), REPO.parent / "shared", Path("/work/shared")):
        if cand and (Path(cand) / "fixtures").is_dir():
            return Path(cand)
    raise RuntimeError("fixtures not found: set YOLOR_SHARED to the folder holding fixtures/ (see README)")


SHARED = _find_shared()
FIXTURES = SHARED / "fixtures"
INPUTS = {"320x320": "input-320x320.npy", "256x320": "input-256x320.npy", "horses-320": "horses-320.npy"}
PAPER_FIXTURES = ["paper-p6-tiny", "paper-e6-tiny", "paper-ssss-s2d", "paper-p6-tiny-nc3"]
MAIN_FIXTURES = ["main-csp-tiny", "main-p6-tiny", "main-csp-tiny-nc3"]


def fixture_path(name: str) -> Path:
    p = FIXTURES / name
    if not p.exists():
        raise FileNotFoundError(f"fixture {p} is missing (a test must not pass without its data)")
    return p


def load_input(tag: str) -> np.ndarray:
    return np.load(fixture_path(INPUTS[tag]))


def load_ref(model: str, tag: str, dtype: str = "fp32") -> np.ndarray:
    return np.load(fixture_path(f"{model}-ref-{tag}-{dtype}.npy"))


def main_cfg(model: str) -> Path:
    return fixture_path(f"{model}.cfg")


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
