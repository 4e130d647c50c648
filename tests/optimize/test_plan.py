"""Which candidates a machine gets, the choice rule, and the runtime hint in the model contract."""
from __future__ import annotations

import json

import pytest

from yolor_deploy.contract import MetadataError, ModelMetadata, RuntimeHint
from yolor_deploy.optimize.candidates import CANDIDATES, REFERENCE, backend_names, plan_candidates
from yolor_deploy.optimize.choose import Row, choose
from yolor_deploy.optimize.machine import Machine

AVX512 = frozenset("avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16".split())


def machine(flags=AVX512, cap=None, providers=("CPUExecutionProvider",), openvino=True) -> Machine:
    return Machine("test cpu", frozenset(flags), cap, tuple(providers), openvino)


def planned(m: Machine, **kw) -> dict[str, str | None]:
    return {spec.name: skip for spec, skip in plan_candidates(m, **kw)}


def test_avx512_bf16_machine_builds_every_cpu_candidate():
    plan = planned(machine())
    assert list(plan) == [c.name for c in CANDIDATES]
    assert [n for n, skip in plan.items() if skip] == ["ort-fp16-cuda"]


def test_avx2_cap_skips_bf16_and_says_why():
    m = machine(cap="AVX2")
    assert not m.bf16 and not m.vnni
    plan = planned(m)
    assert plan["ov-bf16"] == plan["ov-int8-bf16"] == (
        "the CPU has no native bf16 (avx512_bf16/amx_bf16), capped by ONEDNN_MAX_CPU_ISA=AVX2")
    assert plan["ov-int8"] is None and plan["ort-int8"] is None  # int8 still runs (without VNNI)
    assert machine(cap="AVX512_CORE_VNNI").vnni and not machine(cap="AVX512_CORE_VNNI").bf16
    assert machine(flags={"avx2", "fma"}).summary() == "test cpu; can use: openvino"


def test_plan_follows_backends_names_and_installs():
    assert set(planned(machine(), backends=("onnxruntime",))) == {REFERENCE, "ort-int8", "ort-int8-pct",
                                                                 "ort-fp16-cuda"}
    assert set(planned(machine(), names=["ov-int8"])) == {REFERENCE, "ov-int8"}  # the reference always
    no_ov = planned(machine(openvino=False))
    assert no_ov["ov-fp32"].startswith("OpenVINO/NNCF not installed")
    assert planned(machine(providers=("CUDAExecutionProvider", "CPUExecutionProvider")))["ort-fp16-cuda"] is None
    assert backend_names("ov, ORT") == ("openvino", "onnxruntime")


def rows(*specs) -> list[Row]:
    out = []
    for name, p50, m in specs:
        r = Row(name, "onnxruntime", "fp32")
        r.p50, r.map = p50, m
        out.append(r)
    return out


def test_choice_is_the_fastest_within_budget_and_the_front_is_marked():
    rs = rows((REFERENCE, 100.0, 0.750), ("a", 50.0, 0.740), ("b", 30.0, 0.700), ("c", 60.0, 0.752),
              ("d", 55.0, 0.746))
    best, why = choose(rs, rs[0], budget=0.5)
    assert best.name == "d" and best.drop == pytest.approx(0.4) and best.speedup == pytest.approx(100 / 55)
    assert [r.name for r in rs if r.pareto] == ["a", "b", "c", "d"]  # the reference is not: c beats it on both
    assert "faster but over budget: a (drop +1.00: over the budget itself), b (drop +5.00: over the budget itself)" in why
    for r in rs:
        r.chosen = False
    best0, _ = choose(rs, rs[0], budget=0.0)
    assert best0.name == "c"  # an fp32 candidate more accurate than the reference is within a zero budget
    for r in rs:
        r.chosen = False
    rs[3].precision = "bf16"  # zero budget: fp32-exact only, whatever the measured mAP
    assert choose(rs, rs[0], budget=0.0)[0].name == REFERENCE and not rs[3].within_budget
    failed = rows((REFERENCE, 100.0, 0.75), ("x", 10.0, None))
    failed[1].fail("failed", "build: boom")
    assert choose(failed, failed[0], 0.5)[0].name == REFERENCE


def test_runtime_hint_round_trips_and_is_validated():
    meta = ModelMetadata(names=("a",), runtime=RuntimeHint("openvino", "bf16", 2))
    back = ModelMetadata.from_json(meta.to_json())
    assert back.runtime == RuntimeHint("openvino", "bf16", 2)
    assert ModelMetadata.from_json(ModelMetadata(names=("a",)).to_json()).runtime is None
    d = json.loads(meta.to_json())
    for bad, message in [({"backend": "tensorrt"}, "runtime.backend 'tensorrt'"),
                         ({"backend": "openvino", "precision": "int4"}, "runtime.precision 'int4'"),
                         ({"backend": "onnxruntime", "precision": "bf16"}, "is an OpenVINO setting"),
                         ({"backend": "openvino", "threads": 0}, "runtime.threads 0 out of range"),
                         ({"backend": "openvino", "threads": 1.5}, "runtime.threads: 1.5 is not an integer"),
                         ({"backend": "openvino", "cmd": "x"}, "runtime: unknown key(s) cmd"),
                         ("fast", "'runtime' is not an object")]:
        with pytest.raises(MetadataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ModelMetadata.from_json(json.dumps(dict(d, runtime=bad)))


def test_within_budget_only_when_the_interval_fits():
    """A candidate whose mean drop is within the budget but whose interval is not stays out, and the reason
    says how many images would decide; a narrower interval at the same mean gets in."""
    rs = rows((REFERENCE, 100.0, 0.750), ("wide", 40.0, 0.748), ("narrow", 60.0, 0.748))
    rs[1].drop, rs[1].drop_lo, rs[1].drop_hi, rs[1].images_needed = 0.2, -0.9, 1.4, 289
    rs[2].drop, rs[2].drop_lo, rs[2].drop_hi = 0.2, 0.0, 0.45
    best, why = choose(rs, rs[0], budget=0.5)
    assert best.name == "narrow" and not rs[1].within_budget and rs[2].within_budget
    assert "wide (drop +0.20, 95% interval -0.90..+1.40: ~289 images could decide)" in why
