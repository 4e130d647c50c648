"""DarknetModel (main branch) against upstream: state_dict layout, sizes, fixture outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.fixtures import INPUTS, MAIN_FIXTURES, fixture_path, load_input, load_ref, main_cfg
from helpers.parity import assert_within_fp32_noise, reference_models
from yolor_deploy.cfg.darknet import parse_darknet_cfg
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.checkpoint.archive import read_checkpoint as safe_torch_load
from yolor_deploy.nn.darknet import DarknetModel
from yolor_deploy.nn.registry import config_path


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
    """Upstream's fp32 outputs are fp32 samples of our float64 forward (any CPU, any thread count)."""
    name, model = fixture_model
    models = reference_models(model)
    ratios = [assert_within_fp32_noise(models, load_input(tag), load_ref(name, tag), f"{name} {tag}")
              for tag in INPUTS]
    print(f"{name}: worst err/tol {max(ratios):.2f}")


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
