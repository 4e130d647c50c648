"""Small layers of the main-branch (darknet cfg) network.

Three calling conventions, told apart by base class in `DarknetModel.head_maps`:
`Implicit` layers take no input (their output is a learned `[1, C, 1, 1]` vector, as upstream),
`Linked` layers take `(x, outputs)` (they read earlier layers' outputs), everything else `x`.
None of them holds buffers; only `Implicit.implicit` and a weighted `Shortcut.w` are parameters.
"""
from __future__ import annotations

import torch
from torch import nn


class Implicit(nn.Module):
    """Learned vector `implicit` Tensor[1, C, 1, 1] (`[implicit_add|mul|cat]`); `mean` 0 add, 1 mul."""

    def __init__(self, channels: int, mean: float = 0.0):
        super().__init__()
        self.mean = float(mean)
        self.implicit = nn.Parameter(torch.full((1, channels, 1, 1), float(mean)))
        nn.init.normal_(self.implicit, mean=mean, std=0.02)

    def forward(self) -> torch.Tensor:
        return self.implicit


class Linked(nn.Module):
    """A layer that reads the outputs of earlier layers `sources` (absolute indices)."""

    def __init__(self, sources: list[int]):
        super().__init__()
        self.sources = list(sources)

    def extra_repr(self) -> str:
        return f"sources={self.sources}"


class Route(Linked):
    """`[route]`: one earlier output, or several concatenated on channels."""

    def forward(self, x: torch.Tensor, outputs: list) -> torch.Tensor:
        if len(self.sources) == 1:
            return outputs[self.sources[0]]
        return torch.cat([outputs[k] for k in self.sources], 1)


class Shortcut(Linked):
    """`[shortcut]`: x + outputs[k] for each source; with `weights_type`, sigmoid weights `w` as upstream."""

    def __init__(self, sources: list[int], weighted: bool = False):
        super().__init__(sources)
        self.weighted = weighted
        if weighted:
            self.w = nn.Parameter(torch.zeros(len(sources) + 1))

    def forward(self, x: torch.Tensor, outputs: list) -> torch.Tensor:
        if self.weighted:
            w = torch.sigmoid(self.w) * (2 / self.w.numel())
            x = x * w[0]
            for n, k in enumerate(self.sources, 1):
                x = x + outputs[k] * w[n]
            return x
        for k in self.sources:
            x = x + outputs[k]
        return x


class ShiftChannels(Linked):
    """`[shift_channels]`: x + outputs[k] (an implicit vector, broadcast)."""

    def forward(self, x: torch.Tensor, outputs: list) -> torch.Tensor:
        return outputs[self.sources[0]].expand_as(x) + x


class ControlChannels(Linked):
    """`[control_channels]`: outputs[k] * x (an implicit vector, broadcast)."""

    def forward(self, x: torch.Tensor, outputs: list) -> torch.Tensor:
        return outputs[self.sources[0]].expand_as(x) * x


class Reorg(nn.Module):
    """Space-to-depth: Tensor[B, C, H, W] -> Tensor[B, 4C, H/2, W/2], upstream's channel order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)


class YoloSlot(nn.Module):
    """`[yolo]`: marks a head output; passes x through. Anchors and stride live in the spec."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"level={self.level}"


def make_activation(name: str) -> nn.Module | None:
    """Upstream's activation for a cfg name; None for linear."""
    table = {
        "leaky": lambda: nn.LeakyReLU(0.1, inplace=True),
        "silu": nn.SiLU,
        "swish": nn.SiLU,  # upstream Swish: x * sigmoid(x)
        "mish": nn.Mish,  # upstream Mish: x * tanh(softplus(x))
        "logistic": nn.Sigmoid,
        "linear": lambda: None,
    }
    return table[name]()
