"""DarknetModel (main branch) against upstream: state_dict layout, sizes, fixture outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import INPUTS, MAIN_FIXTURES, fixture_path, load_input, load_ref, main_cfg
from yolor_deploy.cfg.darknet import parse_darknet_cfg
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.checkpoint.unpickler import safe_torch_load
from yolor_deploy.nn.darknet import DarknetModel
from yolor_deploy.nn.registry import config_path

# (box px, score) tolerances: max(1e-2 px, 3x) and max(1e-4, 3x) the fp32-vs-fp64 noise in the
# fixture README; only the pairs in the saturated regime need more than the floor.
TOL = {("main-p6-tiny", "320x320"): (8e-2, 3e-4), ("main-csp-tiny-nc3", "256x320"): (5.4e-2, 1e-4)}


def load_fixture_model(name: str, dtype=torch.float32) -> DarknetModel:
    model = load_checkpoint(fixture_path(f"{name}.pt"), cfg=main_cfg(name))
    assert isinstance(model, DarknetModel)
    return model.to(dtype)


def fixture_state_dict(name: str) -> dict:
    """The checkpoint's raw state_dict, in its own key order."""
    return safe_torch_load(fixture_path(f"{name}.pt"))["model"]


@pytest.fixture(scope="module", params=MAIN_FIXTURES)
def fixture_model(request):
    return request.param, load_fixture_model(request.param)


def test_fixture_outputs_match_upstream(fixture_model):
    name, model = fixture_model
    for tag in INPUTS:
        x = torch.from_numpy(load_input(tag))
        ref = load_ref(name, tag)
        with torch.no_grad():
            y = model(x).numpy()
        assert y.shape == ref.shape
        box_tol, score_tol = TOL.get((name, tag), (1e-2, 1e-4))
        box_diff = float(np.abs(y[..., :4] - ref[..., :4]).max())
        score_diff = float(np.abs(y[..., 4:] - ref[..., 4:]).max())
        print(f"{name} {tag}: max abs diff box {box_diff:.3g} score {score_diff:.3g}")
        np.testing.assert_allclose(y[..., :4], ref[..., :4], rtol=1e-4, atol=box_tol)
        assert score_diff <= score_tol


@pytest.mark.parametrize("name", ["main-csp-tiny", "main-csp-tiny-nc3"])
def test_fixture_float64_matches_upstream_float64(name):
    model = load_fixture_model(name, torch.float64)
    x = torch.from_numpy(load_input("320x320")).double()
    with torch.no_grad():
        y = model(x).numpy()
    np.testing.assert_allclose(y, load_ref(name, "320x320", "fp64"), rtol=1e-9, atol=1e-9)


def test_head_maps_and_train_forward(fixture_model):
    name, model = fixture_model
    nl = len(model.strides)
    assert model.strides == [8, 16, 32, 64][:nl] and model.branch == "main"
    assert model.anchors_px().shape == (nl, 3, 2)
    x = torch.zeros(1, 3, 128, 192)
    with torch.no_grad():
        maps = model.head_maps(x)
        raw = model.clone().train()(x)  # a copy: train mode would update the shared model's BN stats
    assert [tuple(m.shape) for m in maps] == [(1, 3 * model.no, 128 // s, 192 // s) for s in model.strides]
    assert [tuple(r.shape) for r in raw] == [(1, 3, 128 // s, 192 // s, model.no) for s in model.strides]
    assert model.compute_strides() == model.strides


def test_no_extra_state():
    model = DarknetModel(parse_darknet_cfg(main_cfg("main-csp-tiny")))
    sd = fixture_state_dict("main-csp-tiny")
    assert list(model.state_dict()) == list(sd)
    assert not list(model.buffers(recurse=False)) and not list(model.decode.state_dict())
    bn = model.module_list[0].BatchNorm2d
    assert (bn.eps, bn.momentum) == (1e-4, 0.03)


def test_wrong_cfg_fails_strict_load():
    model = DarknetModel(parse_darknet_cfg(main_cfg("main-csp-tiny-nc3")))
    sd = fixture_state_dict("main-csp-tiny")
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(sd, strict=True)


def test_full_size_variants_match_upstream_sizes():
    expected = {"yolor_p6": (37_265_016, 862), "yolor_w6": (79_873_400, 862),
                "yolor_csp": (52_923_994, 684), "yolor_csp_x": (99_754_058, 816)}
    for name, (params, entries) in expected.items():
        with torch.device("meta"):
            model = DarknetModel(parse_darknet_cfg(config_path(name)))
        assert (model.num_params(), len(model.state_dict())) == (params, entries), name
