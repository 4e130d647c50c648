"""Paper-branch network: upstream sizes, parity with upstream references (exact in float64, within the\nmeasured fp32 noise in fp32)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.fixtures import INPUTS, PAPER_FIXTURES, fixture_path, load_input, load_ref
from helpers.parity import assert_within_fp32_noise, reference_models
from yolor_deploy.cfg.yaml_cfg import parse_yaml_cfg
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.errors import ConfigError
from yolor_deploy.nn.registry import build_model, parse_config

# upstream.md, "Sizes of the named variants": parameters, state_dict entries, strides
PAPER_SIZES = {
    "yolor-p6": (37_270_264, 864, [8, 16, 32, 64]),
    "yolor-w6": (79_880_952, 864, [8, 16, 32, 64]),
    "yolor-e6": (115_909_400, 960, [8, 16, 32, 64]),
    "yolor-d6": (151_782_680, 1248, [8, 16, 32, 64]),
    "yolor-ssss-s2d": (9_216_634, 383, [8, 16, 32]),
    "yolor-ssss-dwt": (9_216_634, 383, [8, 16, 32]),
}


@pytest.mark.parametrize("variant", list(PAPER_SIZES))
def test_paper_variant_sizes(variant):
    params, entries, strides = PAPER_SIZES[variant]
    with torch.device("meta"):
        m = build_model(parse_config(variant))
    assert m.num_params() == params
    assert len(m.state_dict()) == entries
    assert m.strides == strides


@pytest.mark.parametrize("name", PAPER_FIXTURES)
def test_paper_fixture_matches_upstream(name):
    """Upstream's fp32 outputs are fp32 samples of our float64 forward (any CPU, any thread count)."""
    models = reference_models(load_checkpoint(fixture_path(f"{name}.pt")))
    ratios = [assert_within_fp32_noise(models, load_input(tag), load_ref(name, tag), f"{name} {tag}")
              for tag in INPUTS]
    print(f"{name}: worst err/tol {max(ratios):.2f}")


def test_paper_fixture_fp64_close():
    model = load_checkpoint(fixture_path("paper-p6-tiny.pt")).double()
    with torch.no_grad():
        y = model(torch.from_numpy(load_input("320x320")).double()).numpy()
    assert np.abs(y - load_ref("paper-p6-tiny", "320x320", "fp64")).max() < 1e-9


def test_nc_override_and_names():
    spec = parse_config("yolor-ssss-s2d", nc=3)
    assert spec.nc == 3 and spec.head.args[0] == 3
    m = build_model(spec, names=["a", "b", "c"]).eval()
    with torch.no_grad():
        y = m(torch.rand(1, 3, 64, 96))
    assert y.shape == (1, 3 * (8 * 12 + 4 * 6 + 2 * 3), 8)


def test_dwt_is_haar_with_upstream_layout():
    """Our DWT against the closed form of pytorch_wavelets' db1 (checked with the library when present)."""
    from yolor_deploy.nn.paper_layers import DWT

    x = torch.rand(2, 3, 8, 6, dtype=torch.float64)
    y = DWT()(x)
    assert y.shape == (2, 12, 4, 3)
    a, b, c, d = x[..., 0, 0], x[..., 0, 1], x[..., 1, 0], x[..., 1, 1]
    assert torch.allclose(y[:, :3, 0, 0], (a + b + c + d) / 4)
    pw = pytest.importorskip("pytorch_wavelets")
    yl, yh = pw.DWTForward(J=1, wave="db1", mode="zero").double()(x)
    ref = torch.cat([yl / 2.0, yh[0].reshape(2, -1, 4, 3) / 2.0 + 0.5], 1)
    assert torch.allclose(y, ref, atol=1e-12)


@pytest.mark.parametrize("bad,msg", [
    ({"nc": 1, "anchors": [[1, 2]], "backbone": [[-1, 1, "Evil", []]], "head": []}, "unknown module 'Evil'"),
    ({"nc": 2, "anchors": [[1, 2]], "backbone": [[-1, 1, "Conv", [8, 3, 1]]], "head": []}, "last layer"),
    ({"nc": 2, "anchors": [[1, 2]], "backbone": [[5, 1, "Conv", [8]]], "head": []}, "invalid 'from'"),
    ({"nc": 2, "backbone": [], "head": []}, "missing key 'anchors'"),
])
def test_yaml_errors(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_yaml_cfg(bad)


def test_yaml_never_evaluates(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("nc: 1\nanchors: [[1,2]]\nbackbone: [[-1, 1, Conv, [__import__('os').getpid()]]]\nhead: []\n")
    with pytest.raises(ConfigError, match=r"evil.yaml:3: layer 0: Conv needs the output width"):
        parse_yaml_cfg(p)
