"""Shared test helpers: paths to ../shared fixtures (data made by the upstream code)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("YOLOR_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
INPUTS = {"320x320": "input-320x320.npy", "256x320": "input-256x320.npy", "horses-320": "horses-320.npy"}
PAPER_FIXTURES = ["paper-p6-tiny", "paper-e6-tiny", "paper-ssss-s2d", "paper-p6-tiny-nc3"]
MAIN_FIXTURES = ["main-csp-tiny", "main-p6-tiny", "main-csp-tiny-nc3"]


def fixture_path(name: str) -> Path:
    p = FIXTURES / name
    if not p.exists():
        pytest.skip(f"fixture {p} not available")
    return p


def load_input(tag: str) -> np.ndarray:
    return np.load(fixture_path(INPUTS[tag]))


def load_ref(model: str, tag: str, dtype: str = "fp32") -> np.ndarray:
    return np.load(fixture_path(f"{model}-ref-{tag}-{dtype}.npy"))


def main_cfg(model: str) -> Path:
    return fixture_path(f"{model}.cfg")
