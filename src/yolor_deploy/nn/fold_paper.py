"""Export-time weight folds of a paper-branch model (in place, on the copy `nn.fold` makes).

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

from . import fold_ops as ops
from . import paper_layers as L
from .model import YOLORModel
from .paper_head import IDetect


class FoldedCSPTail(nn.Module):
    """act(cat(y1_affine(y1), y2)) where the y2 half of the BN already lives in cv2."""

    def __init__(self, y1_affine: nn.Module, act: nn.Module):
        super().__init__()
        self.y1_affine, self.act = y1_affine, act

    def forward(self, y1, y2):
        return self.act(torch.cat((self.y1_affine(y1), y2), dim=1))


def _csp_tail_forward(self, y1, y2, out):  # replaces _CSPTail.tail on folded instances
    return out(self.folded_tail(y1, y2))


def fold_csp_tail(m: L._CSPTail) -> None:
    """The CSP block's act(bn(cat(y1, y2))): each half of the BN into the conv that makes it."""
    scale, shift = ops.bn_scale_shift(m.bn)
    c = scale.numel() // 2
    m.cv2 = ops.fold_affine_into_conv(m.cv2, scale[c:], shift[c:])
    if isinstance(m, L.BottleneckCSP):  # y1 = cv3(...): a plain conv takes the other half
        m.cv3 = ops.fold_affine_into_conv(m.cv3, scale[:c], shift[:c])
        y1_affine: nn.Module = nn.Identity()
    else:
        y1_affine = ops.ScaleShift(scale[:c], shift[:c])
    m.folded_tail = FoldedCSPTail(y1_affine, m.act)
    m.bn = nn.Identity()
    m.tail = _csp_tail_forward.__get__(m)


def fold_implicit_head(head: IDetect) -> int:
    """ImplicitM(conv(ImplicitA(x))) per level -> one conv: W' = m*W, b' = m*(b + W a)."""
    for i, conv in enumerate(head.m):
        a = head.ia[i].implicit.double().view(-1)
        mul = head.im[i].implicit.double().view(-1)
        w = conv.weight.double().view(conv.out_channels, -1)
        folded = ops.fold_affine_into_conv(conv, mul, mul * (w @ a))  # bias b*m + m*(W a)
        head.m[i] = folded
        head.ia[i], head.im[i] = nn.Identity(), nn.Identity()
    return 2 * len(head.m)


@torch.no_grad()
def fuse_paper(model: YOLORModel) -> dict[str, int]:
    """Fold BN and implicit layers of a paper-branch model in place; returns counts per kind."""
    counts = {"conv_bn": 0, "csp_bn": 0, "implicit": 0}
    for m in model.modules():
        if isinstance(m, L.Conv) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv, m.bn = ops.fold_bn_into_conv(m.conv, m.bn), nn.Identity()
            counts["conv_bn"] += 1
    for m in model.modules():
        if isinstance(m, L._CSPTail) and isinstance(getattr(m, "bn", None), nn.BatchNorm2d):
            fold_csp_tail(m)
            counts["csp_bn"] += 1
    head = model.model[-1]
    if isinstance(head, IDetect):
        counts["implicit"] += fold_implicit_head(head)
    return counts
