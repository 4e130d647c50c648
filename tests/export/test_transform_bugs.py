"""The export's own transforms are judged on their own: every catalogued fold or rewrite bug, injected
into the exporting process through the public API, is refused by `export_onnx` before anything is
traced or written, with a message naming the layer that departs; on both branches (the bundled
trained model and the main-branch fixture). Correct transforms agree with the checkpoint to ~1e-12
in float64."""
from __future__ import annotations

import re

import pytest
import torch

from helpers.fixtures import fixture_path
from helpers.transform_bugs import TRANSFORM_BUGS, expected_layer
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.errors import VerificationError
from yolor_deploy.export import export_onnx
from yolor_deploy.verify.transforms import TOLERANCE

MODELS = {"trained/shapes-ssss-w025": "paper", "main-csp-tiny": "main"}
HW = (128, 128)


_LOADED: dict = {}


def load(name: str):
    """Each model loaded once per session (the tests below parametrize over (bug, model) pairs)."""
    if name not in _LOADED:
        cfg = fixture_path(f"{name}.cfg") if name.startswith("main-") else None
        _LOADED[name] = load_checkpoint(fixture_path(f"{name}.pt"), cfg=cfg)
    return _LOADED[name]


@pytest.fixture(params=list(MODELS))
def subject(request):
    return request.param, load(request.param)


def test_correct_transforms_agree_in_float64(subject, tmp_path):
    name, model = subject
    res = export_onnx(model, tmp_path / "m.onnx", imgsz=HW, simplify=False)
    checks = {t.name: t for t in res.report.transforms}
    print(f"{name}: " + ", ".join(f"{k} {t.err:.2g}" for k, t in checks.items()))
    assert set(checks) == {"folds", "rewrites"} and all(t.passed for t in checks.values())
    assert all(t.err < 1e-11 for t in checks.values())  # exact algebra: ~1e-14 measured
    assert res.report.to_dict()["transforms"][0]["name"] == "folds"


PAIRS = [(bug, model) for bug, b in TRANSFORM_BUGS.items() for model, branch in MODELS.items()
         if branch in b.branches]


@pytest.mark.parametrize("bug, name", PAIRS)
def test_injected_transform_bug_is_refused(bug, name, monkeypatch, tmp_path):
    model = load(name)
    spec = TRANSFORM_BUGS[bug]
    spec.install(monkeypatch)
    out = tmp_path / "m.onnx"
    with pytest.raises(VerificationError) as e:
        export_onnx(model, out, imgsz=HW, simplify=False, report=str(tmp_path / "r.json"))
    msg = str(e.value)
    print(f"{name}: {bug}: {msg}")
    assert "\n" not in msg and "nothing was written" in msg
    assert not out.exists() and not list(tmp_path.glob("*.onnx"))
    check = next(t for t in e.value.report.transforms if not t.passed)
    assert check.tolerance == TOLERANCE  # float64's own noise on a real model is far below the floor
    assert check.err > 1e4 * TOLERANCE, f"{bug} moves the output by only {check.err:.3g}"
    want = expected_layer(spec, model)
    if want is None:
        assert check.name == "rewrites" and check.departs.startswith("the decode"), msg
    else:
        assert check.name == "folds", msg
        m = re.match(r"layer (\d+) \(\w+\)", check.departs)
        assert m and int(m.group(1)) == want, f"expected layer {want}: {msg}"
    assert (tmp_path / "r.json").exists()  # the refusal's report, for the record


def test_tolerance_follows_float64_noise_of_a_chaotic_network(subject):
    """Where float64 itself is noisy (measured by the input moved by 2 float64 ulps), the tolerance is
    NOISE_FACTOR x that noise: a transform within it passes, one beyond it fails."""
    import numpy as np

    from yolor_deploy.verify.exported import references
    from yolor_deploy.verify.transforms import NOISE_FACTOR, check_transform

    _, model = subject
    (label, ref), = references(model, [("random", np.random.default_rng(0).random((1, 3, 64, 64), np.float32))])
    assert ref.fp64_ulp is not None and np.abs(ref.fp64_ulp - ref.fp64).max() < 1e-9
    ref.fp64_ulp = ref.fp64.copy()
    ref.fp64_ulp[..., 4] += 1e-6  # pretend float64 moves objectness by 1e-6 under 2 ulps of input
    tol = NOISE_FACTOR * 1e-6

    def shifted(by):
        return lambda x: torch.from_numpy(ref.fp64 + np.where(np.arange(ref.fp64.shape[-1]) == 4, by, 0.0))

    m64 = model.clone().double()
    ok = check_transform("t", "", model, m64, shifted(0.5 * tol), [(label, ref)])
    bad = check_transform("t", "", model, m64, shifted(2 * tol), [(label, ref)])
    assert ok.passed and ok.tolerance == pytest.approx(tol)
    assert not bad.passed and bad.departs.startswith("the decode")


def test_every_bug_applies_to_a_tested_branch():
    assert {b for b, _ in PAIRS} == set(TRANSFORM_BUGS)
