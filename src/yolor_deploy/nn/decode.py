"""YOLOR box decode shared by both branches.

`y = sigmoid(p)`, `xy = (2*y[..., :2] - 0.5 + grid) * stride`, `wh = (2*y[..., 2:4])**2 * anchor_px`;
objectness and class scores stay sigmoided. This is the faithful (eager) form: the export form,
without in-place slice writes and with grids built from the runtime shape, lives in
`yolor_deploy.export.rewrites` and replaces `Decode.forward` only inside an export context.
"""
from __future__ import annotations

import torch
from torch import nn


def make_grid(nx: int, ny: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Tensor[1, 1, ny, nx, 2] of (x, y) cell offsets."""
    yv, xv = torch.meshgrid(torch.arange(ny, device=device), torch.arange(nx, device=device), indexing="ij")
    return torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).to(dtype)


class Decode(nn.Module):
    """Stateless decode of the raw head maps.

    forward(maps, anchors_px, strides) -> (pred Tensor[B, N, no], raw list of Tensor[B, na, ny, nx, no])
    where maps[i] is Tensor[B, na*no, ny, nx], anchors_px is Tensor[nl, na, 2] in input pixels.
    Rows are ordered level by level, each flattened as (anchor, gy, gx).
    """

    def __init__(self, na: int, no: int):
        super().__init__()
        self.na, self.no = na, no

    @staticmethod
    def reshape(p: torch.Tensor, na: int, no: int) -> torch.Tensor:
        bs, _, ny, nx = p.shape
        return p.view(bs, na, no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()

    def forward(self, maps: list[torch.Tensor], anchors_px: torch.Tensor, strides: list[float]):
        out, raw = [], []
        for i, p in enumerate(maps):
            p = self.reshape(p, self.na, self.no)
            raw.append(p)
            bs, _, ny, nx, _ = p.shape
            grid = make_grid(nx, ny, p.dtype, p.device)
            anchor = anchors_px[i].view(1, self.na, 1, 1, 2).to(p.dtype)
            y = p.sigmoid()
            y[..., 0:2] = (y[..., 0:2] * 2.0 - 0.5 + grid) * strides[i]
            y[..., 2:4] = (y[..., 2:4] * 2) ** 2 * anchor
            out.append(y.view(bs, -1, self.no))
        return torch.cat(out, 1), raw
