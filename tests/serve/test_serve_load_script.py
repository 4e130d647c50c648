"""scripts/load_test.py runs end to end on a small budget (no timing is asserted: that it measured both
settings without errors, and that the batching server did batch: model calls of more than one image)."""
from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import pytest

from helpers.serve_server import trained_onnx

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "load_test.py"


def load_script():
    spec = importlib.util.spec_from_file_location("load_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def test_load_test_measures_both_settings_without_errors(capsys):
    rc = load_script().main(["--model", str(trained_onnx()), "--requests", "24", "--rounds", "2",
                             "--concurrency", "8", "--max-wait-ms", "20"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "cpu: " in out and "servers exit [0, 0]" in out
    rows = {m[0]: m[1:] for m in re.findall(r"^(batching|no batching)\D.*?\)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+"
                                             r"[\d.]+\s+(\d+)\s+([\d.]+)", out, flags=re.M)}
    assert set(rows) == {"batching", "no batching"}, out
    for rps, p50, errors, _ in rows.values():
        assert float(rps) > 0 and float(p50) > 0 and errors == "0"
    assert float(rows["no batching"][3]) == 1.0
    assert re.search(r"no batching .* 1:24$", out, flags=re.M), out  # 24 model calls of one image
    # batching happened: 8 requests in flight and 20 ms to gather them give model calls of more than one image
    assert float(rows["batching"][3]) > 1.0, out
    (calls,) = re.findall(r"^batching .*?\s((?:\d+:\d+ ?)+)$", out, flags=re.M)
    by_size = {int(k): int(v) for k, v in (c.split(":") for c in calls.split())}
    assert sum(k * v for k, v in by_size.items()) == 24 and max(by_size) > 1, out
    ratio = re.search(r"ratio batching / no batching \(throughput\): (\S+)x", out)
    assert ratio and math.isfinite(float(ratio[1])), out


def test_load_test_refuses_a_non_loopback_url(capsys):
    with pytest.raises(SystemExit):
        load_script().main(["--url", "http://10.1.2.3:8000"])
    assert "loopback addresses only" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["v2-http", "v2-grpc"])
def test_load_test_compares_v1_with_the_open_inference_protocol_on_one_server(capsys, protocol):
    pytest.importorskip("tritonclient.grpc")
    rc = load_script().main(["--model", str(trained_onnx()), "--requests", "16", "--rounds", "2",
                             "--concurrency", "4", "--protocol", protocol])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "servers exit [0]" in out and f"ratio {protocol} / v1" in out, out
    rows = re.findall(r"^(v1 /v1/detect|v2-\w+ infer)\D.*?\)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\d+)", out,
                      flags=re.M)
    assert [(name, errors) for name, _, errors in rows] == [("v1 /v1/detect", "0"), (f"{protocol} infer", "0")]
    assert all(float(rps) > 0 for _, rps, _ in rows)
