"""Paper-branch detection heads: `IDetect` (implicit knowledge around the output convs) and `Detect`.

They return the raw per-level maps; decoding is done by the model's shared `Decode`. Buffers keep
upstream's names and layouts: `anchors` Tensor[nl, na, 2] in grid units (divided by stride) and
`anchor_grid` Tensor[nl, 1, na, 1, 1, 2] in pixels.
"""
from __future__ import annotations

import torch
from torch import nn

from .paper_layers import ImplicitA, ImplicitM


class Detect(nn.Module):
    def __init__(self, nc: int, anchors: list, ch: list[int]):
        super().__init__()
        self.nc, self.no = nc, nc + 5
        self.nl, self.na = len(anchors), len(anchors[0]) // 2
        # first and last anchor areas as python floats (works on the meta device too)
        self._anchor_areas = (anchors[0][0] * anchors[0][1], anchors[-1][-2] * anchors[-1][-1])
        a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
        self.register_buffer("anchors", a)
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)
        self.stride = torch.ones(self.nl)  # set by the model after a dry run

    def level(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.m[i](x)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.level(i, x) for i, x in enumerate(xs)]

    def anchors_px(self) -> torch.Tensor:
        return self.anchor_grid.view(self.nl, self.na, 2)

    def set_stride(self, strides: list[int]) -> None:
        """Record strides, rescale `anchors` to grid units and fix the anchor order like upstream."""
        self.stride = torch.tensor(strides, dtype=torch.float32)
        self.anchors /= self.stride.view(-1, 1, 1)
        area = self._anchor_areas
        if (area[-1] > area[0]) != (strides[-1] > strides[0]):
            self.anchors[:] = self.anchors.flip(0)
            self.anchor_grid[:] = self.anchor_grid.flip(0)

    @torch.no_grad()
    def init_biases(self) -> None:
        """Upstream's prior: objectness ~8 objects per 640 image, uniform class prior."""
        for conv, s in zip(self.m, self.stride.tolist()):
            b = conv.bias.view(self.na, -1)
            b[:, 4] += torch.log(torch.tensor(8 / (640 / s) ** 2))
            b[:, 5:] += torch.log(torch.tensor(0.6 / (self.nc - 0.99)))


class IDetect(Detect):
    """Detect with `ImplicitM(conv(ImplicitA(x)))` per level."""

    def __init__(self, nc: int, anchors: list, ch: list[int]):
        super().__init__(nc, anchors, ch)
        self.ia = nn.ModuleList(ImplicitA(c) for c in ch)
        self.im = nn.ModuleList(ImplicitM(self.no * self.na) for _ in ch)

    def level(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.im[i](self.m[i](self.ia[i](x)))
