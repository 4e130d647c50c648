"""Export-time folds of a main-branch `DarknetModel` (in place, on the copy `nn.fold` makes; exact algebra).

- `fuse_conv_bn_main`: each `module_list.N` Conv2d + BatchNorm2d pair -> one Conv2d with bias.
- `fold_main_implicit`: the head's `[shift_channels]` (x + a, before a 1x1 conv) and
  `[control_channels]` (m * y, after a linear conv) go into that conv's weights, then become
  `nn.Identity`, so a traced graph has no Add/Mul for them. A fold is done only where it is exact:
  conv(x + a) = W x + (b + W a) needs a 1x1 conv without padding (a zero-padded border would
  miss `a`), groups 1, and no other layer reading the shifted tensor; m * (W x + b) needs a conv
  with no activation whose raw output no other layer reads. The weights math runs in float64.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from . import fold_ops as ops
from .darknet import DarknetModel
from .darknet_layers import ControlChannels, Implicit, ShiftChannels


@torch.no_grad()
def fuse_conv_bn_main(model: DarknetModel) -> int:
    """Fold every BatchNorm2d into the Conv2d before it; returns the number of fused pairs."""
    count = 0
    for i, m in enumerate(list(model.module_list)):
        if isinstance(m, nn.Sequential) and "Conv2d" in m._modules and "BatchNorm2d" in m._modules:
            fused = ops.fold_bn_into_conv(m.Conv2d, m.BatchNorm2d)
            rest = [(k, v) for k, v in m._modules.items() if k not in ("Conv2d", "BatchNorm2d")]
            model.module_list[i] = nn.Sequential(OrderedDict([("Conv2d", fused), *rest]))
            count += 1
    return count


def _vector(model: DarknetModel, k: int) -> torch.Tensor | None:
    """The implicit vector Tensor[C] (float64) that layer k outputs, or None if k is not implicit."""
    m = model.module_list[k]
    return m.implicit.detach().double().view(-1) if isinstance(m, Implicit) else None


def _plain_conv(model: DarknetModel, j: int) -> nn.Sequential | None:
    m = model.module_list[j] if 0 <= j < len(model.module_list) else None
    ok = isinstance(m, nn.Sequential) and isinstance(m._modules.get("Conv2d"), nn.Conv2d)
    return m if ok else None


def _fold_shift(model: DarknetModel, i: int, layer: ShiftChannels) -> bool:
    a, seq = _vector(model, layer.sources[0]), _plain_conv(model, i + 1)
    if a is None or seq is None or i in model.keep:
        return False
    conv = seq.Conv2d
    if conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        return False
    wa = conv.weight.double().flatten(1) @ a  # Tensor[out]
    # conv(x + a) = conv(x) * 1 + W a, before whatever follows the conv (a BatchNorm sees the same input)
    seq.Conv2d = ops.fold_affine_into_conv(conv, torch.ones_like(wa), wa)
    return True


def _fold_control(model: DarknetModel, i: int, layer: ControlChannels) -> bool:
    m, seq = _vector(model, layer.sources[0]), _plain_conv(model, i - 1)
    if m is None or seq is None or (i - 1) in model.keep or "activation" in seq._modules:
        return False
    bn = seq._modules.get("BatchNorm2d")
    if bn is not None:  # m * (g (z - mu) / s + beta): scale g and beta
        bn.weight.copy_(bn.weight.double() * m)
        bn.bias.copy_(bn.bias.double() * m)
    else:  # m * conv(x) + 0
        seq.Conv2d = ops.fold_affine_into_conv(seq.Conv2d, m, torch.zeros_like(m))
    return True


@torch.no_grad()
def fold_main_implicit(model: DarknetModel) -> int:
    """Fold shift/control implicit layers into the adjacent convs; returns how many were folded.

    Records in `model.fold_moved` the layers whose own output the folds change on purpose (the
    function of the whole is kept): a folded `[shift_channels]` passes x on (its conv adds W a), the
    conv before a folded `[control_channels]` already multiplies."""
    count = 0
    moved = set(getattr(model, "fold_moved", ()))
    for i, layer in enumerate(list(model.module_list)):
        if isinstance(layer, ShiftChannels):
            done = _fold_shift(model, i, layer)
        elif isinstance(layer, ControlChannels):
            done = _fold_control(model, i, layer)
        else:
            continue
        if done:
            model.module_list[i] = nn.Identity()
            moved.add(i if isinstance(layer, ShiftChannels) else i - 1)
            count += 1
    model.fold_moved = frozenset(moved)
    return count
