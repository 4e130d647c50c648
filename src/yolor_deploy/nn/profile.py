"""Model size figures: parameters and GFLOPs (2 x multiply-accumulates of the convolutions)."""
from __future__ import annotations

import torch
from torch import nn


def count_gflops(model: nn.Module, imgsz: tuple[int, int] = (640, 640)) -> float:
    """GFLOPs of one forward at `imgsz` (H, W): 2 x conv MACs (bias adds included), computed on the meta
    device (no real compute). This is how upstream's `thop`-based figure is defined, minus the
    small BatchNorm/activation terms thop adds."""
    macs = 0

    def hook(m: nn.Conv2d, _inp, out):
        nonlocal macs
        k = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3] + (1 if m.bias is not None else 0)
        macs += out.numel() * k

    meta = model.clone() if hasattr(model, "clone") else model
    meta = meta.to("meta").eval()
    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            meta.head_maps(torch.zeros(1, 3, *imgsz, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return 2 * macs / 1e9
