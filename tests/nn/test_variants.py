"""Every registered variant is built, saved, loaded and exported (dynamic, verified) in the tests."""
from __future__ import annotations

import pytest
import torch

from helpers.fixtures import fixture_path
from yolor_deploy.checkpoint import load_checkpoint, save_checkpoint
from yolor_deploy.errors import CheckpointError
from yolor_deploy.export import export_onnx
from yolor_deploy.nn.registry import VARIANTS, create_model

# Literal on purpose: registering a variant without adding it here fails test_registry_is_covered.
TESTED_VARIANTS = ["yolor-p6", "yolor-w6", "yolor-e6", "yolor-d6", "yolor-ssss-s2d", "yolor-ssss-dwt",
                   "yolor_p6", "yolor_w6", "yolor_csp", "yolor_csp_x"]


# Scaled variants: the same layers as their base with other widths or depths. Their static export runs through
# nothing the base's does not (the static decode is the base's, the folds see the same layer types), so static
# is exported for the bases only; every variant is exported dynamic. `test_scaled_variants_have_their_bases_layers`
# checks the premise. (Saves ~100 s of CI's ~13 min.)
SCALED_FROM = {"yolor-w6": "yolor-p6", "yolor-d6": "yolor-e6", "yolor_w6": "yolor_p6", "yolor_csp_x": "yolor_csp"}


def test_registry_is_covered():
    assert sorted(TESTED_VARIANTS) == sorted(VARIANTS)


def _layer_kinds(variant: str) -> tuple[set[str], tuple[int, ...], int]:
    """(module types, strides, anchors per level) of `variant`, built on torch's meta device (no storage)."""
    from yolor_deploy.nn.registry import build_model, parse_config

    with torch.device("meta"):
        model = build_model(parse_config(variant))
    return ({type(m).__name__ for m in model.modules()}, tuple(int(s) for s in model.strides),
            int(model.anchors.shape[1]) if hasattr(model, "anchors") else -1)


@pytest.mark.parametrize("scaled", sorted(SCALED_FROM))
def test_scaled_variants_have_their_bases_layers(scaled):
    base = SCALED_FROM[scaled]
    assert VARIANTS[scaled].branch == VARIANTS[base].branch
    assert _layer_kinds(scaled) == _layer_kinds(base)


def save_like_upstream(model, path):
    """Main branch: upstream's {'model': fp32 state_dict, ...}; paper: our own format (the pickled
    upstream Model cannot be produced without upstream code: the fixtures cover that path)."""
    if model.branch == "main":
        torch.save({"epoch": -1, "best_fitness": None, "model": model.state_dict(), "optimizer": None}, path)
    else:
        save_checkpoint(model, path)


@pytest.fixture(scope="module", params=TESTED_VARIANTS)
def loaded(request, tmp_path_factory):
    """Each variant built with seeded, well-conditioned random weights, saved as upstream would and loaded back
    (once per module: the static and dynamic export tests share it)."""
    variant = request.param
    model = create_model(variant, seed=0)
    ck = tmp_path_factory.mktemp("variants") / f"{variant}.pt"
    save_like_upstream(model, ck)
    got = load_checkpoint(ck, cfg=variant if model.branch == "main" else None)
    ref, new = model.state_dict(), got.state_dict()
    assert list(ref) == list(new) and all(torch.equal(ref[k], new[k]) for k in ref)
    return variant, got


def _export_and_verify(variant, model, tmp_path, dynamic: bool) -> None:
    """Verified at 128x128 on a real image and random input (dynamic: and at two other sizes with batch 2);
    simplify is exercised on the fixtures (onnxslim takes ~30 s on the largest variants). The seeded weights
    are well-conditioned (`nn.init`): every case must be judged and "ok", never "not checked"."""
    res = export_onnx(model, tmp_path / f"{variant}.onnx", imgsz=(128, 128), dynamic=dynamic, simplify=False,
                      verify_image=str(fixture_path("horses.jpg")))
    rep = res.report
    print(f"{variant} {'dynamic' if dynamic else 'static'}: {rep.status}, largest err/tol {rep.max_ratio:.2f}")
    assert rep.passed, rep.failures()
    assert rep.checked and not rep.not_checked(), rep.not_checked()
    assert len(rep.cases) == (4 if dynamic else 2) and rep.max_ratio < 1.0
    assert [c.status for c in rep.cases] == ["ok"] * len(rep.cases)
    assert res.op_types.get("ScatterND", 0) == 0 and res.op_types.get("BatchNormalization", 0) == 0
    assert res.fold_counts["implicit"] == 2 * len(model.strides)


@pytest.mark.slow
@pytest.mark.parametrize("loaded", [v for v in TESTED_VARIANTS if v not in SCALED_FROM], indirect=True)
def test_variant_static_export(loaded, tmp_path):
    _export_and_verify(*loaded, tmp_path, dynamic=False)


@pytest.mark.slow
def test_variant_dynamic_export(loaded, tmp_path):
    _export_and_verify(*loaded, tmp_path, dynamic=True)


@pytest.mark.slow
def test_wrong_cfg_suggests_the_fitting_variant(tmp_path):
    model = create_model("yolor_csp", seed=0)
    ck = tmp_path / "csp.pt"
    save_like_upstream(model, ck)
    with pytest.raises(CheckpointError, match=r"csp.pt: weights do not fit cfg yolor_csp_x: \d+ of the model's \d+ tensors missing \(first: .*\d+ with "
                                             r"another shape \(first: [^;]+\); these fit: yolor_csp \(nc=80\)$"):
        load_checkpoint(ck, cfg="yolor_csp_x")
    with pytest.raises(CheckpointError, match=r"needs its config: pass --cfg .*; its shapes fit: yolor_csp \(nc=80\)"):
        load_checkpoint(ck)
