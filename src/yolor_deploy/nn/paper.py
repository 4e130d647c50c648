"""Paper-branch YOLOR network built from a `YamlSpec` (module names via an explicit registry)."""
from __future__ import annotations

import torch
from torch import nn

from ..cfg.yaml_cfg import LAYERS, YamlSpec
from . import paper_layers as L
from .model import YOLORModel
from .paper_head import Detect, IDetect

MODULES: dict[str, type[nn.Module]] = {
    "Conv": L.Conv, "Bottleneck": L.Bottleneck, "BottleneckCSP": L.BottleneckCSP,
    "BottleneckCSPF": L.BottleneckCSPF, "BottleneckCSP2": L.BottleneckCSP2, "SPP": L.SPP,
    "SPPCSP": L.SPPCSP, "DownC": L.DownC, "Focus": L.Focus, "ReOrg": L.ReOrg, "DWT": L.DWT,
    "Concat": L.Concat, "nn.Upsample": nn.Upsample, "IDetect": IDetect, "Detect": Detect,
}
if set(MODULES) != set(LAYERS):  # the parser's registry and the builder's must name the same layers
    raise ImportError(f"nn.paper.MODULES and cfg.yaml_cfg.LAYERS differ: {sorted(set(MODULES) ^ set(LAYERS))}")


class PaperModel(YOLORModel):
    """`self.model` is an nn.Sequential indexed like upstream's (`model.N.*` state_dict keys)."""

    branch = "paper"

    def __init__(self, spec: YamlSpec, names: list[str] | None = None):
        super().__init__(spec.nc, spec.na, names)
        self.spec = spec
        layers = []
        for ls in spec.layers:
            cls = MODULES[ls.module]
            m = nn.Sequential(*[cls(*ls.args) for _ in range(ls.number)]) if ls.number > 1 else cls(*ls.args)
            m.f, m.i = ls.source, ls.index
            layers.append(m)
        self.model = nn.Sequential(*layers)
        self.save = sorted({x % ls.index for ls in spec.layers
                            for x in ([ls.source] if isinstance(ls.source, int) else ls.source) if x != -1})
        self.strides = self.compute_strides()
        self.head.set_stride(self.strides)

    @property
    def head(self) -> Detect:
        return self.model[-1]

    def head_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        y: list[torch.Tensor | None] = []
        for m in self.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def anchors_px(self) -> torch.Tensor:
        return self.head.anchors_px()

    def head_convs(self) -> list[nn.Conv2d]:
        return list(self.head.m)

    def init_biases(self) -> None:
        self.head.init_biases()
