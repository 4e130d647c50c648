"""The algebra every fold uses, in the dtype of the weights it is given (float64 for export).

- `bn_scale_shift`: eval-mode BatchNorm as a per-channel affine map, bn(x) == x * scale + shift;
- `fold_affine_into_conv`: a new Conv2d computing conv(x) * scale + shift per output channel;
- `ScaleShift`: what is left of an affine map that no conv can take.
Both branches' folds (`fold_paper.py`, `fold_main.py`) call these through this module, so one change
here (or one injected bug) reaches both.
"""
from __future__ import annotations

import torch
from torch import nn


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (scale, shift) with bn(x) == x*scale + shift in eval mode."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.double() - bn.running_mean.double() * scale


@torch.no_grad()
def fold_affine_into_conv(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A new Conv2d (same device and dtype as `conv`) computing `conv(x) * scale + shift` per output channel."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    fused.bias.copy_(bias * scale + shift)
    return fused


def fold_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    return fold_affine_into_conv(conv, *bn_scale_shift(bn))


class ScaleShift(nn.Module):
    """Per-channel x*scale + shift (what is left of a BN that cannot go into a conv), in the dtype of
    `scale` and `shift` (float64 from `bn_scale_shift`; the folded copy is cast as a whole afterwards)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.view(1, -1, 1, 1))
        self.register_buffer("shift", shift.view(1, -1, 1, 1))

    def forward(self, x):
        return x * self.scale + self.shift
