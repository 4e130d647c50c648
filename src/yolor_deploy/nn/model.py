"""The common face of both YOLOR branches.

Subclasses (`PaperModel` for yaml configs, `DarknetModel` for darknet cfgs) build their layers with
upstream-compatible names (so upstream `state_dict`s load strictly) and implement `head_maps`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .decode import Decode


class YOLORModel(nn.Module):
    """forward(x: Tensor[B,3,H,W], RGB 0..1):
    - eval: Tensor[B, N, 5+nc] = (cx, cy, w, h in input pixels, obj, cls...) sigmoided, like upstream's
      decoded inference output;
    - train: list of raw per-level maps Tensor[B, na, ny, nx, 5+nc].
    """

    branch: str = ""  # "paper" | "main"

    def __init__(self, nc: int, na: int, names: list[str] | None = None):
        super().__init__()
        self.nc, self.na, self.no = nc, na, nc + 5
        self.names = list(names) if names else [str(i) for i in range(nc)]
        self.variant = ""  # registry name or config path, set by the builder
        self.spec = None  # the cfg spec the model was built from
        self.strides: list[int] = []  # filled by the subclass after building
        self.source_sha256 = ""  # sha256 of the checkpoint file it was loaded from (set by the loader)
        self.fold_counts: dict[str, int] = {}  # folds applied by `nn.fold.prepare_for_export`, per kind
        self.fold_moved: frozenset[int] = frozenset()  # top-level layers whose own output a fold changes
        self.train_imgsz: tuple[int, int] | None = None  # training size (H, W) where the files say it
        self.train_imgsz_source = ""  # where train_imgsz came from (the loader sets both)
        self.decode = Decode(na, self.no)

    # --- to implement -------------------------------------------------------------------------
    def head_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw head outputs, Tensor[B, na*no, ny, nx] per level, in stride order."""
        raise NotImplementedError

    def anchors_px(self) -> torch.Tensor:
        """Tensor[nl, na, 2]: anchor (w, h) in input pixels, as the decode uses them."""
        raise NotImplementedError

    def head_convs(self) -> list[nn.Conv2d]:
        """The detection-head convs (with bias), one per level in stride order."""
        raise NotImplementedError

    # --- common -------------------------------------------------------------------------------
    @property
    def stride(self) -> torch.Tensor:
        return torch.tensor(self.strides, dtype=torch.float32)

    def forward(self, x: torch.Tensor):
        maps = self.head_maps(x)
        if self.training:
            return [Decode.reshape(p, self.na, self.no) for p in maps]
        pred, _ = self.decode(maps, self.anchors_px().to(maps[0].device), [float(s) for s in self.strides])
        return pred

    def clone(self) -> YOLORModel:
        """A deep copy sharing the (immutable) spec."""
        return copy.deepcopy(self, memo={id(self.spec): self.spec})

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def compute_strides(self, ch: int = 3, size: int = 256) -> list[int]:
        """Strides from a dry run (how upstream finds them)."""
        was = self.training
        self.eval()
        with torch.no_grad():
            maps = self.head_maps(torch.zeros(1, ch, size, size))
        self.train(was)
        return [size // m.shape[-2] for m in maps]
