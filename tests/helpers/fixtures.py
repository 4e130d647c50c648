"""Paths to the upstream-made fixtures in ../shared (or $YOLOR_SHARED) and loaders for their arrays."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
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
