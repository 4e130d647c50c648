"""Layers of the paper-branch (yaml) YOLOR networks.

Attribute names (`conv`, `bn`, `cv1`..`cv7`, `m`, `ia`, `im`, `anchors`, `anchor_grid`) follow
upstream's so that upstream `state_dict`s load with `strict=True`. BatchNorm uses eps 1e-3 and
momentum 0.03, the values upstream's `initialize_weights` sets on every paper-branch model.
"""
from __future__ import annotations

import torch
from torch import nn

BN_EPS, BN_MOMENTUM = 1e-3, 0.03


def bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def autopad(k: int, p: int | None = None) -> int:
    return k // 2 if p is None else p


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), groups=g, bias=False)
        self.bn = bn2d(c2)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_, c2, 3, 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class _CSPTail(nn.Module):
    """Shared tail of the CSP blocks: act(bn(cat(y1, y2))) -> final Conv."""

    def tail(self, y1, y2, out: nn.Module):
        return out(self.act(self.bn(torch.cat((y1, y2), dim=1))))


class BottleneckCSP(_CSPTail):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, 1)
        self.bn = bn2d(2 * c_)
        self.act = nn.SiLU()
        self.m = nn.Sequential(*[Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)])

    def forward(self, x):
        return self.tail(self.cv3(self.m(self.cv1(x))), self.cv2(x), self.cv4)


class BottleneckCSPF(_CSPTail):
    """BottleneckCSP without the cv3 transition conv."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, 1)
        self.bn = bn2d(2 * c_)
        self.act = nn.SiLU()
        self.m = nn.Sequential(*[Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)])

    def forward(self, x):
        return self.tail(self.m(self.cv1(x)), self.cv2(x), self.cv4)


class BottleneckCSP2(_CSPTail):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv3 = Conv(2 * c_, c2, 1, 1)
        self.bn = bn2d(2 * c_)
        self.act = nn.SiLU()
        self.m = nn.Sequential(*[Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)])

    def forward(self, x):
        x1 = self.cv1(x)
        return self.tail(self.m(x1), self.cv2(x1), self.cv3)


class SPP(nn.Module):
    def __init__(self, c1: int, c2: int, k=(5, 9, 13)):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * (len(k) + 1), c2, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k])

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [m(x) for m in self.m], 1))


class SPPCSP(_CSPTail):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5,
                 k=(5, 9, 13)):
        super().__init__()
        c_ = int(2 * c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = Conv(c_, c_, 3, 1)
        self.cv4 = Conv(c_, c_, 1, 1)
        self.m = nn.ModuleList([nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k])
        self.cv5 = Conv(4 * c_, c_, 1, 1)
        self.cv6 = Conv(c_, c_, 3, 1)
        self.bn = bn2d(2 * c_)
        self.act = nn.SiLU()
        self.cv7 = Conv(2 * c_, c2, 1, 1)

    def forward(self, x):
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [m(x1) for m in self.m], 1)))
        return self.tail(y1, self.cv2(x), self.cv7)


class DownC(nn.Module):
    """Downsample: cat(3x3 stride-k conv branch, maxpool + 1x1 conv branch)."""

    def __init__(self, c1: int, c2: int, n: int = 1, k: int = 2):
        super().__init__()
        self.cv1 = Conv(c1, c1, 1, 1)
        self.cv2 = Conv(c1, c2 // 2, 3, k)
        self.cv3 = Conv(c1, c2 // 2, 1, 1)
        self.mp = nn.MaxPool2d(kernel_size=k, stride=k)

    def forward(self, x):
        return torch.cat((self.cv2(self.cv1(x)), self.cv3(self.mp(x))), dim=1)


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """Tensor[B,C,H,W] -> Tensor[B,4C,H/2,W/2] in upstream ReOrg order."""
    return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)


class ReOrg(nn.Module):
    def forward(self, x):
        return space_to_depth(x)


class Focus(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = Conv(c1 * 4, c2, k, s, p, g, act)

    def forward(self, x):
        return self.conv(space_to_depth(x))


class DWT(nn.Module):
    """One-level Haar (db1) wavelet transform, as upstream's `DWT` with pytorch_wavelets' DWTForward
    (J=1, wave='db1', mode='zero'): cat(LL/2, [LH, HL, HH]/2 + 0.5) with the three detail bands
    interleaved per input channel. Our own implementation: no wavelet library needed.
    """

    def forward(self, x):
        a, b = x[..., ::2, ::2], x[..., ::2, 1::2]  # even row: left, right
        c, d = x[..., 1::2, ::2], x[..., 1::2, 1::2]  # odd row: left, right
        ll = (a + b + c + d) / 2
        lh = (a + b - c - d) / 2  # vertical detail (row difference)
        hl = (a - b + c - d) / 2  # horizontal detail (column difference)
        hh = (a - b - c + d) / 2
        bands = torch.stack((lh, hl, hh), 2)  # [B, C, 3, H/2, W/2]
        bsz, ch, _, h2, w2 = bands.shape
        return torch.cat([ll / 2.0, bands.reshape(bsz, ch * 3, h2, w2) / 2.0 + 0.5], 1)


class Concat(nn.Module):
    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


class ImplicitA(nn.Module):
    """Learned per-channel offset added to the input."""

    def __init__(self, channel: int):
        super().__init__()
        self.channel = channel
        self.implicit = nn.Parameter(torch.zeros(1, channel, 1, 1))
        nn.init.normal_(self.implicit, std=0.02)

    def forward(self, x):
        return self.implicit + x


class ImplicitM(nn.Module):
    """Learned per-channel scale applied to the input."""

    def __init__(self, channel: int):
        super().__init__()
        self.channel = channel
        self.implicit = nn.Parameter(torch.ones(1, channel, 1, 1))
        nn.init.normal_(self.implicit, mean=1.0, std=0.02)

    def forward(self, x):
        return self.implicit * x
