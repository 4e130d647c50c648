"""Folds are exact algebra: in float64 the folded copy computes the untouched model's function to ~1e-13.

Fast (small inputs, tiny models), so they also serve as the mutation-testing killers of `nn/fold*.py`:
every fold path is exercised (Conv+BN; CSP tails with and without cv3; IDetect's implicit pair; main
`[shift_channels]` before a conv with and without BN, `[control_channels]` after a conv with and without
BN; the inexact cases left alone), with BN statistics far from the identity so that no term can vanish.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.configs import IMPLICIT_STEM, YOLO_TAIL
from helpers.fixtures import fixture_path
from yolor_deploy.cfg.darknet import parse_darknet_cfg
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.nn import paper_layers as L
from yolor_deploy.nn.darknet import DarknetModel
from yolor_deploy.nn.darknet_layers import ControlChannels, ShiftChannels
from yolor_deploy.nn.fold import prepare_for_export
from yolor_deploy.nn.fold_ops import ScaleShift, bn_scale_shift, fold_affine_into_conv, fold_bn_into_conv
from yolor_deploy.nn.registry import create_model

EXACT = 1e-11  # relative, float64: measured 1e-14 .. 3e-12


@torch.no_grad()
def scramble(model: nn.Module, seed: int = 0) -> nn.Module:
    """BN statistics and affine terms, implicit vectors and conv biases far from their identities."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.3)
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.05)
            m.eps = 1e-3
        elif hasattr(m, "implicit") and isinstance(m.implicit, nn.Parameter):
            base = 1.0 if float(m.implicit.mean()) > 0.5 else 0.0
            m.implicit.copy_(base + torch.randn(m.implicit.shape, generator=g) * 0.5)
        elif isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
    return model.eval()


def rel_diff(model: nn.Module, x: torch.Tensor) -> tuple[float, nn.Module]:
    folded = prepare_for_export(model, fold=True, dtype=torch.float64)
    ref = model.clone().double().eval()
    with torch.no_grad():
        a, b = folded(x.double()), ref(x.double())
    return float((a - b).abs().max() / b.abs().max()), folded


def test_bn_scale_shift_and_affine_fold_are_exact():
    g = torch.Generator().manual_seed(1)
    bn = scramble(nn.BatchNorm2d(6)).double()
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True).double()
    x = torch.randn(2, 4, 9, 7, generator=g, dtype=torch.float64)
    scale, shift = bn_scale_shift(bn)
    assert scale.dtype == shift.dtype == torch.float64
    with torch.no_grad():
        want = bn(conv(x))
        torch.testing.assert_close(bn(x[:, :1].expand(-1, 6, -1, -1)),
                                   x[:, :1] * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), rtol=0, atol=1e-13)
        torch.testing.assert_close(fold_bn_into_conv(conv, bn)(x), want, rtol=0, atol=1e-12)
        fused = fold_affine_into_conv(conv, scale, shift)
        assert fused.bias is not None and fused.weight.dtype == torch.float64
        torch.testing.assert_close(fused(x), want, rtol=0, atol=1e-12)
        plain = nn.Conv2d(4, 6, 1, bias=False).double()
        torch.testing.assert_close(fold_affine_into_conv(plain, scale, shift)(x), bn(plain(x)), rtol=0, atol=1e-12)
        ss = ScaleShift(scale, shift)
        torch.testing.assert_close(ss(x[:, :1].expand(-1, 6, -1, -1).contiguous()),
                                   bn(x[:, :1].expand(-1, 6, -1, -1)), rtol=0, atol=1e-13)
    assert ss.scale.dtype == torch.float64 and ScaleShift(scale.float(), shift.float()).shift.dtype == torch.float32


@pytest.mark.parametrize("block", [L.BottleneckCSP, L.BottleneckCSPF, L.BottleneckCSP2, L.SPPCSP])
def test_csp_tail_folds_exactly(block):
    from yolor_deploy.nn.fold_paper import fuse_paper

    class One(nn.Module):  # fuse_paper looks for an IDetect at model.model[-1]
        def __init__(self):
            super().__init__()
            self.model = nn.Sequential(block(8, 8))

        def forward(self, x):
            return self.model(x)

    m = scramble(One()).double()
    ref = scramble(One()).double()
    ref.load_state_dict(m.state_dict())
    x = torch.randn(1, 8, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = ref(x)
        counts = fuse_paper(m)
        got = m(x)
    assert counts["csp_bn"] == 1 and counts["implicit"] == 0
    assert not any(isinstance(b, nn.BatchNorm2d) for b in m.modules())
    assert float((got - want).abs().max() / want.abs().max()) < EXACT


@pytest.mark.parametrize("name", ["trained/shapes-ssss-w025", "paper-p6-tiny"])
def test_paper_fixture_folds_exactly(name):
    model = scramble(load_checkpoint(fixture_path(f"{name}.pt")), seed=3)
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    rel, folded = rel_diff(model, x)
    print(f"{name}: folded vs untouched, float64, relative {rel:.3g}; {folded.fold_counts}")
    assert rel < EXACT
    assert folded.fold_counts["implicit"] == 2 * len(model.strides) and folded.fold_counts["conv_bn"] > 0
    assert not any(isinstance(b, (nn.BatchNorm2d, L.ImplicitA, L.ImplicitM)) for b in folded.modules())
    assert next(folded.parameters()).dtype == torch.float64
    default = prepare_for_export(model)  # folded by default, in float32
    assert next(default.parameters()).dtype == torch.float32 and default.fold_counts == folded.fold_counts
    assert any(isinstance(b, nn.BatchNorm2d) for b in model.modules())  # the original is untouched


HEAD = IMPLICIT_STEM + """
[implicit_add]
filters=8

[implicit_mul]
filters=18

[route]
layers=0

[shift_channels]
from=1

[convolutional]
{bn}filters=18
size=1
stride=1
pad=0
activation=linear

[control_channels]
from=2

[route]
layers=0

[shift_channels]
from=3

[convolutional]
batch_normalize=1
filters=18
size=1
stride=1
pad=0
activation=linear

[control_channels]
from=4

""" + YOLO_TAIL


@pytest.mark.parametrize("bn", [False, True])
def test_main_shift_and_control_fold_exactly(bn):
    """[shift_channels] then a 1x1 conv, then [control_channels]: with and without BN in the conv."""
    model = scramble(DarknetModel(parse_darknet_cfg(HEAD.format(bn="batch_normalize=1\n" if bn else ""))), seed=4)
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    rel, folded = rel_diff(model, x)
    print(f"main head (bn={bn}): relative {rel:.3g}, {folded.fold_counts}, moved {sorted(folded.fold_moved)}")
    assert rel < EXACT
    assert folded.fold_counts == {"conv_bn": 2 + bn, "implicit": 4}
    assert folded.fold_moved == frozenset({6, 7, 10, 11})  # the shifts pass x on; the convs multiply
    assert not any(isinstance(m, (ShiftChannels, ControlChannels, nn.BatchNorm2d)) for m in folded.module_list)


def test_main_shift_from_a_feature_map_is_not_folded():
    """[shift_channels] whose source is a feature map, not an implicit vector, stays as it is (exactly)."""
    cfg = HEAD.format(bn="").replace("[shift_channels]\nfrom=1", "[shift_channels]\nfrom=0", 1)
    model = scramble(DarknetModel(parse_darknet_cfg(cfg)), seed=6)
    rel, folded = rel_diff(model, torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert rel < EXACT and folded.fold_counts["implicit"] == 3
    assert isinstance(folded.module_list[6], ShiftChannels)


def test_main_fixture_folds_exactly():
    model = scramble(load_checkpoint(fixture_path("main-csp-tiny.pt"), cfg=fixture_path("main-csp-tiny.cfg")), 5)
    rel, folded = rel_diff(model, torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)))
    assert rel < EXACT and folded.fold_counts == {"conv_bn": 112, "implicit": 6}


def test_no_fold_keeps_every_layer():
    model = create_model("yolor-ssss-s2d", nc=2)
    kept = prepare_for_export(model, fold=False)
    assert kept.fold_counts == {} and kept.fold_moved == frozenset()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in kept.modules()) == sum(
        isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(p.requires_grad for p in kept.parameters())
    assert not kept.training
