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
