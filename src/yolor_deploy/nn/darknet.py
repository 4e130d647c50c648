"""Main-branch YOLOR network built from a `DarknetSpec` (darknet .cfg).

`module_list.N` is section N of the cfg, named as upstream's `models/models.py` names it, so an
upstream main checkpoint (`module_list.N.Conv2d.weight`, `module_list.N.BatchNorm2d.running_var`,
`module_list.N.implicit`, ...) loads with `strict=True`. Strides come from the cfg (the spec's
static walk), so the model also builds on the meta device.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from ..cfg.darknet import DarknetSpec, SectionSpec
from .darknet_layers import (
    ControlChannels,
    Implicit,
    Linked,
    Reorg,
    Route,
    ShiftChannels,
    Shortcut,
    YoloSlot,
    make_activation,
)
from .model import YOLORModel

BN_EPS, BN_MOMENTUM = 1e-4, 0.03  # upstream main branch


def _ref(i: int, j: int) -> int:
    return i + j if j < 0 else j


def _conv(sec: SectionSpec, i: int, cin: int) -> nn.Module:
    o = sec.options
    k, bn = o["size"], bool(o.get("batch_normalize", 0))
    stride = o.get("stride", o.get("stride_x"))
    m = nn.Sequential()
    m.add_module("Conv2d", nn.Conv2d(cin, o["filters"], k, stride, padding=k // 2 if o["pad"] else 0,
                                     groups=o.get("groups", 1), bias=not bn))
    if bn:
        m.add_module("BatchNorm2d", nn.BatchNorm2d(o["filters"], eps=BN_EPS, momentum=BN_MOMENTUM))
    act = make_activation(o["activation"])
    if act is not None:
        m.add_module("activation", act)
    return m


def _maxpool(sec: SectionSpec, i: int, cin: int) -> nn.Module:
    k, s = sec.options["size"], sec.options["stride"]
    pool = nn.MaxPool2d(kernel_size=k, stride=s, padding=(k - 1) // 2)
    if k == 2 and s == 1:  # darknet's size-preserving 2x2 pool
        return nn.Sequential(OrderedDict([("ZeroPad2d", nn.ZeroPad2d((0, 1, 0, 1))), ("MaxPool2d", pool)]))
    return pool


def _linked(cls: type[Linked], key: str) -> Callable[[SectionSpec, int, int], nn.Module]:
    return lambda sec, i, cin: cls([_ref(i, j) for j in sec.options[key]])


# Layer type -> builder(section, index, input channels). Keys match cfg.darknet.LAYER_TYPES.
BUILDERS: dict[str, Callable[[SectionSpec, int, int], nn.Module]] = {
    "convolutional": _conv,
    "route": _linked(Route, "layers"),
    "shortcut": lambda sec, i, cin: Shortcut([_ref(i, j) for j in sec.options["from"]],
                                             weighted="weights_type" in sec.options),
    "upsample": lambda sec, i, cin: nn.Upsample(scale_factor=sec.options["stride"]),
    "maxpool": _maxpool,
    "reorg": lambda sec, i, cin: nn.Sequential(OrderedDict([("Reorg", Reorg())])),
    "implicit_add": lambda sec, i, cin: Implicit(sec.options["filters"], 0.0),
    "implicit_cat": lambda sec, i, cin: Implicit(sec.options["filters"], 0.0),
    "implicit_mul": lambda sec, i, cin: Implicit(sec.options["filters"], 1.0),
    "shift_channels": _linked(ShiftChannels, "from"),
    "control_channels": _linked(ControlChannels, "from"),
    "yolo": lambda sec, i, cin: YoloSlot(level=-1),
}


class DarknetModel(YOLORModel):
    """YOLOR from a darknet cfg; eval forward equals upstream `Darknet(cfg)(x)[0]`."""

    branch = "main"

    def __init__(self, spec: DarknetSpec, names: list[str] | None = None):
        super().__init__(spec.nc, spec.na, names)
        self.spec = spec
        self.variant = spec.source
        layers = []
        for i, sec in enumerate(spec.sections):
            cin = spec.channels[i - 1] if i else 3
            layers.append(BUILDERS[sec.type](sec, i, cin))
        for level, i in enumerate(spec.yolo_layers):
            layers[i].level = level
        self.module_list = nn.ModuleList(layers)
        self.keep = frozenset(k for m in layers if isinstance(m, Linked) for k in m.sources)
        self.strides = list(spec.strides)
        self._init_head_bias()

    def head_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs: list[torch.Tensor | None] = []
        maps = []
        for i, m in enumerate(self.module_list):
            if isinstance(m, Linked):
                x = m(x, outputs)
            elif isinstance(m, Implicit):
                x = m()
            else:
                x = m(x)
            if isinstance(m, YoloSlot):
                maps.append(x)
            outputs.append(x if i in self.keep else None)
        return maps

    def anchors_px(self) -> torch.Tensor:
        return torch.tensor(self.spec.anchors, dtype=torch.float32)

    def head_conv_index(self, level: int) -> int:
        """Section index of the conv whose output (through shift/control layers) feeds [yolo] `level`."""
        j = self.spec.yolo_layers[level] - 1
        while self.spec.sections[j].type in ("control_channels", "shift_channels"):
            j -= 1
        return j

    def head_convs(self) -> list[nn.Conv2d]:
        """As the base class; a level whose head section is not a plain conv with bias is left out."""
        mods = [self.module_list[self.head_conv_index(level)] for level in range(len(self.strides))]
        convs = [m[0] if isinstance(m, nn.Sequential) else None for m in mods]
        return [c for c in convs if isinstance(c, nn.Conv2d) and c.bias is not None]

    @torch.no_grad()
    def _init_head_bias(self) -> None:
        """Upstream's 'smart bias' init of the head convs (objectness and class priors)."""
        for level, stride in enumerate(self.strides):
            m = self.module_list[self.head_conv_index(level)]
            conv = m[0] if isinstance(m, nn.Sequential) else None
            if not isinstance(conv, nn.Conv2d) or conv.bias is None:
                continue
            b = conv.bias[: self.na * self.no].view(self.na, -1)
            b[:, 4] += math.log(8 / (640 / stride) ** 2)
            b[:, 5:] += math.log(0.6 / (self.nc - 0.99))
