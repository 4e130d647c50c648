"""Hypothesis budgets: small and derandomized in the suite (CI stays fast and repeatable); scaled up and random
for a long run: `YOLOR_FUZZ_SCALE=50 python -m pytest -q tests/cfg/test_config_fuzz.py tests/checkpoint/test_checkpoint_fuzz.py`
(scripts/fuzz.sh)."""
from __future__ import annotations

import os

SCALE = max(1, int(os.environ.get("YOLOR_FUZZ_SCALE", "1") or 1))


def examples(n: int) -> int:
    return n * SCALE


DERANDOMIZE = SCALE == 1
