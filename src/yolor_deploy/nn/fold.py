"""`prepare_for_export`: the copy of a model that an export is traced from, with every fold applied.

The original is never changed. Folds run on a float64 copy, so the folded network can be judged
against the untouched one in float64 (`verify.transforms`), where exact algebra agrees to ~1e-13;
the caller then casts the copy to the export dtype. Branch specifics: `fold_paper.py`, `fold_main.py`;
the shared algebra: `fold_ops.py`.
"""
from __future__ import annotations

import torch

from .fold_main import fold_main_implicit, fuse_conv_bn_main
from .fold_paper import fuse_paper
from .model import YOLORModel


def prepare_for_export(model: YOLORModel, fold: bool = True, dtype: torch.dtype = torch.float32) -> YOLORModel:
    """A deep copy in eval mode, folded when `fold`, in `dtype` (folds computed in float64)."""
    m = model.clone().double().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    m.fold_counts = {}
    m.fold_moved = frozenset()
    if fold:
        if m.branch == "main":
            m.fold_counts = {"conv_bn": fuse_conv_bn_main(m), "implicit": fold_main_implicit(m)}
        else:
            m.fold_counts = fuse_paper(m)
    return m.to(dtype)
