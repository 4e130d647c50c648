"""Export-time weight folds for the paper branch, and `prepare_for_export` for both branches.

All folds change weights only (math in float64), never the function computed:
- Conv+BN: `Conv.bn` goes into `Conv.conv` (with a bias);
- the standalone BN of the CSP blocks, `act(bn(cat(y1, y2)))`: the y2 half goes into `cv2` (a plain
  1x1 conv), and so does the y1 half where y1 is a plain conv (`BottleneckCSP.cv3`); otherwise the
  y1 half stays as a per-channel scale and shift;
- IDetect: `ImplicitM(conv(ImplicitA(x)))` per level becomes one 1x1 conv:
  W' = m*W, b' = m*(b + W a).
"""
from __future__ import annotations

import torch
from torch import nn

from . import paper_layers as L
from .model import YOLORModel
from .paper_head import IDetect


def bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (scale, shift) with bn(x) == x*scale + shift in eval mode."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.double() - bn.running_mean.double() * scale


@torch.no_grad()
def fold_affine_into_conv(conv: nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> nn.Conv2d:
    """A new Conv2d computing `conv(x) * scale + shift` per output channel."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True).to(conv.weight.device, conv.weight.dtype)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused.weight.copy_(conv.weight.double() * scale.view(-1, 1, 1, 1))
    fused.bias.copy_(bias * scale + shift)
    return fused


def fold_bn_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    return fold_affine_into_conv(conv, *bn_scale_shift(bn))


class ScaleShift(nn.Module):
    """Per-channel x*scale + shift (what is left of a BN that cannot go into a conv)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.float().view(1, -1, 1, 1))
        self.register_buffer("shift", shift.float().view(1, -1, 1, 1))

    def forward(self, x):
        return x * self.scale + self.shift


class FoldedCSPTail(nn.Module):
    """act(cat(y1_affine(y1), y2)) where the y2 half of the BN already lives in cv2."""

    def __init__(self, y1_affine: nn.Module, act: nn.Module):
        super().__init__()
        self.y1_affine, self.act = y1_affine, act

    def forward(self, y1, y2):
        return self.act(torch.cat((self.y1_affine(y1), y2), dim=1))


def _csp_tail_forward(self, y1, y2, out):  # replaces _CSPTail.tail on folded instances
    return out(self.folded_tail(y1, y2))


@torch.no_grad()
def fuse_paper(model: YOLORModel) -> dict[str, int]:
    """Fold BN and implicit layers of a paper-branch model in place; returns counts per kind."""
    counts = {"conv_bn": 0, "csp_bn": 0, "implicit": 0}
    for m in model.modules():
        if isinstance(m, L.Conv) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv, m.bn = fold_bn_into_conv(m.conv, m.bn), nn.Identity()
            counts["conv_bn"] += 1
    for m in model.modules():
        if isinstance(m, L._CSPTail) and isinstance(getattr(m, "bn", None), nn.BatchNorm2d):
            scale, shift = bn_scale_shift(m.bn)
            c = scale.numel() // 2
            m.cv2 = fold_affine_into_conv(m.cv2, scale[c:], shift[c:])
            if isinstance(m, L.BottleneckCSP):  # y1 = cv3(...): a plain conv takes the other half
                m.cv3 = fold_affine_into_conv(m.cv3, scale[:c], shift[:c])
                y1_affine = nn.Identity()
            else:
                y1_affine = ScaleShift(scale[:c], shift[:c])
            m.folded_tail = FoldedCSPTail(y1_affine, m.act)
            m.bn = nn.Identity()
            m.tail = _csp_tail_forward.__get__(m)
            counts["csp_bn"] += 1
    head = model.model[-1]
    if isinstance(head, IDetect):
        for i, conv in enumerate(head.m):
            a = head.ia[i].implicit.double().view(-1)
            mul = head.im[i].implicit.double().view(-1)
            w = conv.weight.double().view(conv.out_channels, -1)
            shift = mul * (conv.bias.double() + w @ a)
            folded = fold_affine_into_conv(conv, mul, torch.zeros_like(mul))
            folded.bias.copy_(shift)
            head.m[i] = folded
            head.ia[i], head.im[i] = nn.Identity(), nn.Identity()
            counts["implicit"] += 2
    return counts


def prepare_for_export(model: YOLORModel, fold: bool = True) -> YOLORModel:
    """A deep copy in eval mode with every fold applied (the original is untouched)."""
    m = model.clone().float().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    if not fold:
        m.fold_counts = {}
        return m
    if m.branch == "main":
        from .fold_main import fold_main_implicit, fuse_conv_bn_main

        m.fold_counts = {"conv_bn": fuse_conv_bn_main(m), "implicit": fold_main_implicit(m)}
    else:
        m.fold_counts = fuse_paper(m)
    return m
