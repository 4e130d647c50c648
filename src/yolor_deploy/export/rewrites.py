"""Export-time replacements, applied only inside `export_context()` and restored on exit.

`Decode.forward` is replaced by a form that exports cleanly:
- no in-place slice writes (`y[..., 0:2] = ...` traces to ScatterND): split, compute, concat;
- the grid comes from the runtime feature shape (CumSum over ones made from the data), and reshapes use
  traced sizes, so batch, height and width stay symbolic in a `--dynamic` export;
- the decode runs in float32 even when the network runs in float16 (a half export keeps box
  coordinates exact to fp32: fp16 has a 1 px step above 1024 px); in float32 and float64 it runs in the
  network's own dtype, so the rewrite can be judged in float64 against the eager decode
  (`verify.transforms`).
"""
from __future__ import annotations

import contextlib

import torch

from ..nn.decode import Decode


def runtime_grid(p: torch.Tensor) -> torch.Tensor:
    """Tensor[1, 1, ny, nx, 2] of (x, y) offsets for p: Tensor[B, na, ny, nx, no], from its shape at run time.

    The legacy tracer records `p.shape` entries used in `arange`/`ones_like` as constants, so the ones
    are made from the data itself (`Where(cond, 1, 1)` is 1 whatever the values, NaN included) and
    counted with CumSum: the grid follows the feature map at run time.
    """
    s = p[:1, :1, :, :, :1]
    ones = torch.where(s > 0, 1.0, 1.0)
    return torch.cat((ones.cumsum(3) - 1, ones.cumsum(2) - 1), -1)


def decode_for_export(self: Decode, maps, anchors_px, strides):
    out, raw = [], []
    for i, p in enumerate(maps):
        bs, _, ny, nx = p.shape  # traced sizes: the Reshape follows the runtime shape (opset 11+)
        p = (p.float() if p.dtype == torch.float16 else p).reshape(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2)
        raw.append(p)
        xy, wh, conf = p.sigmoid().split((2, 2, self.no - 4), -1)
        xy = (xy * 2.0 - 0.5 + runtime_grid(p)) * strides[i]
        wh = (wh * 2) ** 2 * anchors_px[i].to(p.dtype).view(1, self.na, 1, 1, 2)
        out.append(torch.cat((xy, wh, conf), -1).flatten(1, 3))
    return torch.cat(out, 1), raw


@contextlib.contextmanager
def export_context():
    """Patch the export forms in; always restore the originals (like mmdeploy's RewriterContext)."""
    patches = [(Decode, "forward", decode_for_export)]
    originals = [(cls, name, cls.__dict__[name]) for cls, name, _ in patches]
    try:
        for cls, name, fn in patches:
            setattr(cls, name, fn)
        yield
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)
