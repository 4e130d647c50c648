"""Paper-branch YOLOR yaml configs (`models/yolor-*.yaml`) -> `YamlSpec`.

Upstream's `parse_model` runs `eval()` on module names and argument strings. We never do: module
names are looked up in an explicit set, and the only symbolic arguments upstream configs use
(`nc`, `anchors`, `None`, `True`, `False`) are resolved from a fixed table.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError


# Module names a yaml config may use (what the builder in nn/paper.py knows).
@dataclass(frozen=True)
class LayerKind:
    """How the parser treats a yaml module name: `width` - its first argument is the output width (scaled
    by width_multiple); `repeat_arg` - it takes the repeat count as its third argument instead of being
    repeated; `head` - a detection head."""

    width: bool = False
    repeat_arg: bool = False
    head: bool = False


# The one registry of paper-branch layer names: the parser accepts exactly these, and the builder
# (`nn.paper.MODULES`) must map exactly these to modules (checked when `nn.paper` is imported).
LAYERS: dict[str, LayerKind] = {
    "Conv": LayerKind(width=True), "Bottleneck": LayerKind(width=True),
    "BottleneckCSP": LayerKind(width=True, repeat_arg=True), "BottleneckCSPF": LayerKind(width=True, repeat_arg=True),
    "BottleneckCSP2": LayerKind(width=True, repeat_arg=True), "SPP": LayerKind(width=True),
    "SPPCSP": LayerKind(width=True, repeat_arg=True), "DownC": LayerKind(width=True, repeat_arg=True),
    "Focus": LayerKind(width=True), "ReOrg": LayerKind(), "DWT": LayerKind(), "Concat": LayerKind(),
    "nn.Upsample": LayerKind(), "IDetect": LayerKind(head=True), "Detect": LayerKind(head=True),
}
KNOWN_MODULES = frozenset(LAYERS)
WIDTH_MODULES = frozenset(k for k, v in LAYERS.items() if v.width)
REPEAT_ARG_MODULES = frozenset(k for k, v in LAYERS.items() if v.repeat_arg)
HEAD_MODULES = frozenset(k for k, v in LAYERS.items() if v.head)


@dataclass(frozen=True)
class LayerSpec:
    """One row `[from, number, module, args]`, with channels resolved.

    `args` are the constructor arguments after upstream's rewriting: `(c1, c2, [n,] *rest)` for
    width modules, `(nc, anchors, chs)` for heads, the raw arguments otherwise.
    """

    index: int
    source: int | tuple[int, ...]
    number: int
    module: str
    args: tuple
    c_out: int


@dataclass(frozen=True)
class YamlSpec:
    """A parsed paper-branch config. `data` is the (nc-overridden) dict, as upstream embeds it."""

    nc: int
    anchors: tuple[tuple[float, ...], ...]
    layers: tuple[LayerSpec, ...]
    data: dict
    source: str = "<dict>"
    branch: str = "paper"

    @property
    def na(self) -> int:
        return len(self.anchors[0]) // 2

    @property
    def head(self) -> LayerSpec:
        return self.layers[-1]

    def to_dict(self) -> dict:
        return copy.deepcopy(self.data)


def _make_divisible(x: float, divisor: int) -> int:
    return math.ceil(x / divisor) * divisor


def _resolve(value: Any, nc: int, anchors: Any, where: str) -> Any:
    table = {"nc": nc, "anchors": anchors, "None": None, "True": True, "False": False}
    if isinstance(value, str) and value in table:
        return copy.deepcopy(table[value])
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [_resolve(v, nc, anchors, where) for v in value]
    raise ConfigError(f"{where}: unsupported argument {value!r}")


def _read(source: str | Path | dict) -> tuple[dict, str]:
    if isinstance(source, dict):
        return copy.deepcopy(source), "<dict>"
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"{path}: invalid YAML{at}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a YOLOR model config (top level is not a mapping)")
    return data, str(path)


def parse_yaml_cfg(source: str | Path | dict, nc: int | None = None) -> YamlSpec:
    """Parse a paper-branch yaml file (or the dict a checkpoint embeds) into a `YamlSpec`."""
    data, name = _read(source)
    for key in ("anchors", "backbone", "head"):
        if key not in data:
            raise ConfigError(f"{name}: missing key '{key}'")
    if nc is not None:
        data["nc"] = int(nc)
    nc = data.get("nc")
    if not isinstance(nc, int) or nc < 1:
        raise ConfigError(f"{name}: 'nc' must be a positive integer, got {nc!r}")
    gd, gw = float(data.get("depth_multiple", 1.0)), float(data.get("width_multiple", 1.0))
    anchors = data["anchors"]
    if isinstance(anchors, int) or not anchors or any(len(a) % 2 or not a for a in anchors):
        raise ConfigError(f"{name}: 'anchors' must be a list of (w, h) pairs per level")
    na = len(anchors[0]) // 2
    no = na * (nc + 5)

    rows = list(data["backbone"] or []) + list(data["head"] or [])
    ch: list[int] = [3]
    layers: list[LayerSpec] = []
    for i, row in enumerate(rows):
        where = f"{name}: layer {i}"
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise ConfigError(f"{where}: expected [from, number, module, args], got {row!r}")
        f, n, m, args = row
        if m not in KNOWN_MODULES:
            raise ConfigError(f"{where}: unknown module '{m}'")
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"{where}: 'number' must be a positive integer")
        froms = [f] if isinstance(f, int) else list(f) if isinstance(f, list) else None
        if froms is None or any(not isinstance(x, int) or x >= i or x < -(i + 1) or (x < -1 and i + x < 0)
                                for x in froms):
            raise ConfigError(f"{where}: invalid 'from' {f!r}")
        args = _resolve(list(args or []), nc, anchors, where)

        def c(x: int) -> int:
            return ch[x if x <= -1 else x + 1]

        n = max(round(n * gd), 1) if n > 1 else n
        if m in WIDTH_MODULES:
            if not args or not isinstance(args[0], int):
                raise ConfigError(f"{where}: {m} needs the output width as first argument")
            c1, c2 = c(f), args[0]
            c2 = _make_divisible(c2 * gw, 8) if c2 != no else c2
            args = [c1, c2, *args[1:]]
            if m in REPEAT_ARG_MODULES:
                args.insert(2, n)
                n = 1
        elif m == "Concat":
            c2 = sum(c(x) for x in froms)
        elif m in HEAD_MODULES:
            if i != len(rows) - 1:
                raise ConfigError(f"{where}: {m} must be the last layer")
            if len(args) < 2 or not isinstance(args[1], list) or len(args[1]) != len(froms):
                raise ConfigError(f"{where}: {m} needs one anchor list per input level")
            args = [args[0], args[1], [c(x) for x in froms]]
            c2 = no
        elif m in ("ReOrg", "DWT"):
            c2 = c(f) * 4
        else:
            c2 = c(f)
        layers.append(LayerSpec(i, f if isinstance(f, int) else tuple(f), n, m, tuple(args), c2))
        ch.append(c2)
    if not layers or layers[-1].module not in HEAD_MODULES:
        raise ConfigError(f"{name}: the last layer must be IDetect or Detect")
    return YamlSpec(nc=nc, anchors=tuple(tuple(a) for a in anchors), layers=tuple(layers), data=data, source=name)
