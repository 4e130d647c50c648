"""Export-time folds for the main-branch `DarknetModel` (in place; outputs equal within fp32 noise).

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

from ..nn.darknet import DarknetModel
from ..nn.darknet_layers import ControlChannels, Implicit, ShiftChannels


@torch.no_grad()
def fuse_conv_bn_main(model: DarknetModel) -> int:
    """Fold every BatchNorm2d into the Conv2d before it; returns the number of fused pairs."""
    count = 0
    for i, m in enumerate(list(model.module_list)):
        if isinstance(m, nn.Sequential) and "Conv2d" in m._modules and "BatchNorm2d" in m._modules:
            conv, bn = m.Conv2d, m.BatchNorm2d
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
            fused.bias.copy_((bias - bn.running_mean.double()) * scale + bn.bias.double())
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


def _ensure_bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros(conv.out_channels, dtype=conv.weight.dtype,
                                             device=conv.weight.device), requires_grad=False)
    return conv.bias


def _fold_shift(model: DarknetModel, i: int, layer: ShiftChannels) -> bool:
    a, seq = _vector(model, layer.sources[0]), _plain_conv(model, i + 1)
    if a is None or seq is None or i in model.keep:
        return False
    conv = seq.Conv2d
    if conv.kernel_size != (1, 1) or conv.padding != (0, 0) or conv.groups != 1:
        return False
    wa = conv.weight.double().flatten(1) @ a  # Tensor[out]
    bn = seq._modules.get("BatchNorm2d")
    if bn is not None:  # BN(Wx + Wa) = BN with running_mean - Wa
        bn.running_mean.copy_(bn.running_mean.double() - wa)
    else:
        bias = _ensure_bias(conv)
        bias.copy_(bias.double() + wa)
    return True


def _fold_control(model: DarknetModel, i: int, layer: ControlChannels) -> bool:
    m, seq = _vector(model, layer.sources[0]), _plain_conv(model, i - 1)
    if m is None or seq is None or (i - 1) in model.keep or "activation" in seq._modules:
        return False
    bn = seq._modules.get("BatchNorm2d")
    if bn is not None:  # m * (g (z - mu) / s + beta): scale g and beta
        bn.weight.copy_(bn.weight.double() * m)
        bn.bias.copy_(bn.bias.double() * m)
    else:
        conv = seq.Conv2d
        conv.weight.copy_(conv.weight.double() * m.view(-1, 1, 1, 1))
        bias = _ensure_bias(conv)
        bias.copy_(bias.double() * m)
    return True


@torch.no_grad()
def fold_main_implicit(model: DarknetModel) -> int:
    """Fold shift/control implicit layers into the adjacent convs; returns how many were folded."""
    count = 0
    for i, layer in enumerate(list(model.module_list)):
        if isinstance(layer, ShiftChannels):
            done = _fold_shift(model, i, layer)
        elif isinstance(layer, ControlChannels):
            done = _fold_control(model, i, layer)
        else:
            continue
        if done:
            model.module_list[i] = nn.Identity()
            count += 1
    return count
