"""scripts/bench_export.py runs end to end (a smoke test: no timing is asserted, only that it measured)."""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_export.py"


def load_script():
    spec = importlib.util.spec_from_file_location("bench_export", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_export_prints_finite_ratios_and_restores_threads(capsys):
    before = torch.get_num_threads()
    rc = load_script().main(["yolor-ssss-s2d", "--imgsz", "128", "--runs", "2", "--warmup", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    ratios = dict(re.findall(r"ratio (ours/eager|ours/naive) \(median latency\): (\S+)", out))
    assert set(ratios) == {"ours/eager", "ours/naive"}, out
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in ratios.values()), ratios
    for word in ("eager", "ours", "naive", "ScatterND", "BatchNormalization", "session create"):
        assert word in out
    # ours has no ScatterND and no BatchNormalization; the naive export has both
    ours = re.search(r"ours\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*\d+\s*│\s*\d+\s*│\s*(\d+)", out)
    naive = re.search(r"naive\s*│\s*(\d+)\s*│\s*(\d+)\s*│\s*\d+\s*│\s*\d+\s*│\s*(\d+)", out)
    assert ours and naive, out
    assert int(ours[2]) == 0 and int(ours[3]) == 0 and int(naive[2]) > 0 and int(naive[3]) > 0
    assert torch.get_num_threads() == before
