"""`save_checkpoint`: our own format, plain tensors and JSON-like data only (weights_only=True loads it)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..fs import atomic_path
from ..nn.model import YOLORModel
from .load import OUR_FORMAT


def save_checkpoint(model: YOLORModel, path: str | Path, imgsz: int | tuple[int, int] | None = None) -> Path:
    """Write `model` atomically (temp file, then rename). `imgsz`: the training size to record
    (default: the model's `train_imgsz`, when known); loaders and exports use it as their default size."""

    path = Path(path)
    spec = model.spec
    data = {
        "format": OUR_FORMAT,
        "format_version": 1,
        "branch": model.branch,
        "spec": spec.to_dict(),
        "names": list(model.names),
        "variant": str(model.variant),
        "strides": list(model.strides),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "bn_eps": {n: float(m.eps) for n, m in model.named_modules()
                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)},
    }
    size = imgsz if imgsz is not None else model.train_imgsz
    if size is not None:
        hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[-1]))
        data["imgsz"] = list(hw)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path
