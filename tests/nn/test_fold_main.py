"""Export-time folds of the main-branch model: implicit shift/control and Conv+BN."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers.configs import IMPLICIT_STEM, YOLO_TAIL
from helpers.fixtures import fixture_path, load_input, load_ref, main_cfg
from yolor_deploy.cfg.darknet import parse_darknet_cfg
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.nn.darknet import DarknetModel
from yolor_deploy.nn.darknet_layers import ControlChannels, ShiftChannels
from yolor_deploy.nn.fold_main import fold_main_implicit, fuse_conv_bn_main


def load(name: str) -> DarknetModel:
    model = load_checkpoint(fixture_path(f"{name}.pt"), cfg=main_cfg(name))
    assert isinstance(model, DarknetModel)
    return model


def run(model: DarknetModel, x: torch.Tensor):
    with torch.no_grad():
        return model.head_maps(x), model(x)


@pytest.mark.parametrize("name, nl", [("main-p6-tiny", 4), ("main-csp-tiny-nc3", 3)])
def test_fold_implicit_keeps_outputs(name, nl):
    model = load(name)
    x = torch.from_numpy(load_input("horses-320"))
    maps, pred = run(model, x)
    assert fold_main_implicit(model) == 2 * nl
    assert not any(isinstance(m, (ShiftChannels, ControlChannels)) for m in model.module_list)
    assert fold_main_implicit(model) == 0  # nothing left to fold
    maps2, pred2 = run(model, x)
    diff = max(float((a - b).abs().max()) for a, b in zip(maps, maps2))
    print(f"{name}: fold_main_implicit max abs diff head maps {diff:.3g}, pred {float((pred - pred2).abs().max()):.3g}")
    assert diff < 1e-4
    torch.testing.assert_close(pred2, pred, rtol=1e-4, atol=1e-3)


def test_fuse_and_fold_against_float64():
    """Both folds together stay within fp32 noise of the unfolded float64 model."""
    model = load("main-csp-tiny")
    x = torch.from_numpy(load_input("320x320"))
    exact = load_ref("main-csp-tiny", "320x320", "fp64")
    assert fuse_conv_bn_main(model) == 112
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_main_implicit(model) == 6
    _, pred = run(model, x)
    diff = np.abs(pred.double().numpy() - exact)
    print(f"main-csp-tiny fused+folded vs fp64: box {diff[..., :4].max():.3g} score {diff[..., 4:].max():.3g}")
    assert diff[..., :4].max() < 1e-2 and diff[..., 4:].max() < 1e-4


def test_fold_skips_inexact_cases():
    """A shift before a 3x3 conv (zero padding) or a control after an activated conv is not folded."""
    cfg = IMPLICIT_STEM + """
[route]
layers=0

[shift_channels]
from=1

[convolutional]
filters=18
size=3
stride=1
pad=1
activation=leaky

[control_channels]
from=2

""" + YOLO_TAIL
    model = DarknetModel(parse_darknet_cfg(cfg)).eval()
    assert fold_main_implicit(model) == 0
    assert fuse_conv_bn_main(model) == 1


def test_fold_skips_a_shift_from_a_conv_and_a_shift_before_a_pool():
    """Only an implicit source is folded, and only into a conv right after it: a [shift_channels] whose source
    is a conv, or that a padded [maxpool] (a Sequential without a conv) follows, stays as it is, and the model
    still computes the same function."""
    cfg = IMPLICIT_STEM.replace("[implicit_mul]\nfilters=18\n", "") + """
[route]
layers=0

[convolutional]
filters=8
size=1
stride=1
pad=0
activation=linear

[shift_channels]
from=0

[shift_channels]
from=1

[maxpool]
size=2
stride=1

[convolutional]
filters=18
size=1
stride=1
pad=0
activation=linear

""" + YOLO_TAIL
    model = DarknetModel(parse_darknet_cfg(cfg)).eval().double()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        assert fold_main_implicit(model) == 0
        after = model(x)
    assert torch.equal(before, after)


def _randomized(cfg: str, seed: int = 0) -> DarknetModel:
    """The cfg's model in float64 eval mode with every BN statistic and implicit vector drawn far from identity,
    so a fold that scales, shifts or skips the wrong thing moves the output by much more than rounding."""
    torch.manual_seed(seed)
    model = DarknetModel(parse_darknet_cfg(cfg)).eval().double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.25, 4.0)
                m.weight.normal_(1.0, 0.5)
                m.bias.normal_(0.0, 0.5)
            elif hasattr(m, "implicit"):
                m.implicit.normal_(1.0 if "mul" in type(m).__name__.lower() or m.mean == 1.0 else 0.0, 0.5)
    return model


def _fold_and_compare(cfg: str, folds: int) -> float:
    """Fold the implicit layers of a float64 model; the count must be `folds` and the function the same."""
    model = _randomized(cfg)
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        assert fold_main_implicit(model) == folds
        after = model(x)
    rel = float((after - before).abs().max() / before.abs().max())
    print(f"fold_main_implicit ({folds} folds) vs unfolded, float64: max rel diff {rel:.3g}")
    assert rel < 1e-9
    return rel


_SHIFT_INTO = IMPLICIT_STEM + """
[route]
layers=0

[shift_channels]
from=1

[convolutional]
{conv}
filters=18
activation=linear

[control_channels]
from=2

""" + YOLO_TAIL


def test_fold_shift_and_control_into_convs_with_batchnorm():
    """A shift before and a control after a 1x1 conv *with* BatchNorm fold into the BN's statistics and affine
    (running mean -= W a; weight and bias *= m): exact in float64 with every BN value far from identity."""
    _fold_and_compare(_SHIFT_INTO.format(conv="batch_normalize=1\nsize=1\nstride=1\npad=0"), folds=2)


def test_fold_shift_and_control_into_plain_convs():
    _fold_and_compare(_SHIFT_INTO.format(conv="size=1\nstride=1\npad=0"), folds=2)


@pytest.mark.parametrize("conv", [
    "size=3\nstride=1\npad=0",             # not 1x1 (no padding): W a is not one vector per output
    "size=1\nstride=1\npad=0\ngroups=2",   # 1x1 but grouped: each output sees half of a
    "size=3\nstride=1\npad=1",             # zero-padded border would miss a
])
def test_shift_not_folded_into_a_conv_that_is_not_a_plain_1x1(conv):
    """Only the shift is refused (the control after the same linear conv still folds), and the function stays."""
    model = _randomized(_SHIFT_INTO.format(conv=conv))
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        assert fold_main_implicit(model) == 1
        assert isinstance(model.module_list[4], ShiftChannels)
        after = model(x)
    assert float((after - before).abs().max() / before.abs().max()) < 1e-9


_CONTROL_READ = IMPLICIT_STEM + """
[route]
layers=0

[convolutional]
{bn}filters=18
size=1
stride=1
pad=0
activation=linear

[control_channels]
from={src}

[shortcut]
from=-2

""" + YOLO_TAIL


@pytest.mark.parametrize("bn", ["", "batch_normalize=1\n"])
def test_control_not_folded_into_a_conv_another_layer_reads(bn):
    """The conv before the control (layer 4) is also read by a [shortcut] (layer 6): folding m into it would scale
    what the shortcut adds too, so it stays; the layers two before and after (3, 5) are not read."""
    model = _randomized(_CONTROL_READ.format(bn=bn, src=2))
    assert 4 in model.keep and 3 not in model.keep and 5 not in model.keep
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
        assert fold_main_implicit(model) == 0
        after = model(x)
    assert torch.equal(before, after)


def test_control_from_a_conv_or_after_a_route_not_folded():
    """A control whose source is not an implicit vector (a conv), or that follows a layer that is not a conv
    (a route), has nothing to fold: both stay and nothing fails."""
    from_conv = IMPLICIT_STEM + """
[route]
layers=0

[convolutional]
filters=18
size=1
stride=1
pad=0
activation=linear

[convolutional]
filters=18
size=1
stride=1
pad=0
activation=linear

[control_channels]
from=4

""" + YOLO_TAIL
    after_route = IMPLICIT_STEM + """
[route]
layers=0

[convolutional]
filters=18
size=1
stride=1
pad=0
activation=linear

[route]
layers=-1

[control_channels]
from=2

""" + YOLO_TAIL
    for text in (from_conv, after_route):
        model = _randomized(text)
        x = torch.rand(1, 3, 64, 64, dtype=torch.float64)
        with torch.no_grad():
            before = model(x)
            assert fold_main_implicit(model) == 0
            after = model(x)
        assert torch.equal(before, after)
