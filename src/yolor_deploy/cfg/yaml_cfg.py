"""Paper-branch YOLOR yaml configs (`models/yolor-*.yaml`) -> `YamlSpec`.

Upstream's `parse_model` runs `eval()` on module names and argument strings. We never do: module
names are looked up in an explicit set, and the only symbolic arguments upstream configs use
(`nc`, `anchors`, `None`, `True`, `False`) are resolved from a fixed table.

A config is data from outside (a file the user names, or a dict pickled in a checkpoint), so it is
checked against a schema before anything is built: the type and range of every field, the
arguments each module takes, channels and strides layer by layer, and the activations of the
256x256 dry run `nn.model.compute_strides` makes, all from the spec, before anything is allocated.
(The parameter count is not computed here: `nn.registry.build_model` counts it on torch's meta device,
from the very modules it would build, and refuses a network above `MAX_PARAMS` before allocating.)
Every problem is a one-line `ConfigError`: `file:line: problem` when the config came from a file,
`<dict>: layer N: problem` otherwise.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .plain import (
    MAX_NC,
    finite_number,
    load_yaml,
    plain_copy,
    printable,
    read_text,
    short,
)

# --- limits ------------------------------------------------------------------------------------
# Generous against the real variants (the largest, yolor-d6: 41 layers, 1280 channels, 151.8 M
# parameters, 15 repeats, 4 levels of 3 anchors); tight enough that nothing hangs or exhausts memory.
MAX_MULTIPLE = 10.0  # depth_multiple and width_multiple lie in (0, MAX_MULTIPLE]
MAX_LEVELS = 8  # detection levels (anchor lists)
MAX_ANCHORS = 16  # anchors per level
MAX_ANCHOR_PX = 100_000.0
MAX_LAYERS = 500  # rows of backbone + head
MAX_REPEATS = 100  # 'number' of a row, before and after depth_multiple
MAX_BLOCKS = 2_000  # repeated blocks in the whole network (sum of the scaled 'number's)
MAX_CHANNELS = 16_384  # output channels of a layer (the detection head's outputs excepted)
MAX_KERNEL = 31
STRIDES = (1, 2, 4, 8)  # stride of a conv, DownC, or upsampling factor
MAX_STRIDE = 128  # total stride of any layer (the dry run at 256 px keeps maps of at least 2x2)
CHECK_SIZE = 256  # input size of the dry run `nn.model.compute_strides` makes
MAX_ACTIVATION = 1 << 26  # values in one layer's output during that dry run (256 MiB in fp32)
UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic", "nearest-exact")


# Module names a yaml config may use (what the builder in nn/paper.py knows).
@dataclass(frozen=True)
class LayerKind:
    """How the parser treats a yaml module name: `width` - its first argument is the output width (scaled
    by width_multiple); `repeat_arg` - it takes the repeat count as its third argument instead of being
    repeated; `head` - a detection head. `args` names the yaml arguments it accepts, in order (the
    checks in `ARG_CHECKS` are keyed by these names), the first `required` of them mandatory; `defaults`
    are the constructor's values for the optional ones."""

    width: bool = False
    repeat_arg: bool = False
    head: bool = False
    args: tuple[str, ...] = ()
    required: int = 0
    defaults: tuple = ()

    def __post_init__(self) -> None:
        if len(self.args) - self.required != len(self.defaults):
            raise ValueError("one default per optional argument")


_CONV = LayerKind(width=True, args=("c2", "k", "s", "p", "g", "act"), required=1, defaults=(1, 1, None, 1, True))


def _csp(shortcut: bool) -> LayerKind:
    return LayerKind(width=True, repeat_arg=True, args=("c2", "shortcut", "g", "e"), required=1,
                     defaults=(shortcut, 1, 0.5))


_HEAD = LayerKind(head=True, args=("nc", "anchors"), required=2)

# The one registry of paper-branch layer names: the parser accepts exactly these, and the builder
# (`nn.paper.MODULES`) must map exactly these to modules (checked when `nn.paper` is imported).
LAYERS: dict[str, LayerKind] = {
    "Conv": _CONV, "Focus": _CONV,
    "Bottleneck": LayerKind(width=True, args=("c2", "shortcut", "g", "e"), required=1, defaults=(True, 1, 0.5)),
    "BottleneckCSP": _csp(True), "BottleneckCSPF": _csp(True), "BottleneckCSP2": _csp(False),
    "SPP": LayerKind(width=True, args=("c2", "pool_k"), required=1, defaults=((5, 9, 13),)),
    "SPPCSP": LayerKind(width=True, repeat_arg=True, args=("c2", "shortcut", "g", "e", "pool_k"), required=1,
                        defaults=(False, 1, 0.5, (5, 9, 13))),
    "DownC": LayerKind(width=True, repeat_arg=True, args=("c2", "down"), required=1, defaults=(2,)),
    "ReOrg": LayerKind(), "DWT": LayerKind(), "Concat": LayerKind(args=("dim",), defaults=(1,)),
    "nn.Upsample": LayerKind(args=("size", "scale_factor", "mode"), required=2, defaults=("nearest",)),
    "IDetect": _HEAD, "Detect": _HEAD,
}
KNOWN_MODULES = frozenset(LAYERS)
WIDTH_MODULES = frozenset(k for k, v in LAYERS.items() if v.width)
REPEAT_ARG_MODULES = frozenset(k for k, v in LAYERS.items() if v.repeat_arg)
HEAD_MODULES = frozenset(k for k, v in LAYERS.items() if v.head)


def _int_in(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _odd_kernel(v: Any) -> bool:
    return _int_in(1, MAX_KERNEL)(v) and v % 2 == 1


def _is_stride(v: Any) -> bool:
    return finite_number(v) and v in STRIDES


# Argument name -> (check of its value, what it must be). `nc` and `anchors` (heads) are checked against
# the top-level fields instead.
ARG_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "c2": (_int_in(1, MAX_CHANNELS), f"an integer in 1..{MAX_CHANNELS}"),
    "k": (_odd_kernel, f"an odd integer in 1..{MAX_KERNEL}"),
    "s": (lambda v: _is_stride(v) and isinstance(v, int), "1, 2, 4 or 8"),
    "p": (lambda v: v is None or _int_in(0, MAX_KERNEL // 2)(v), "None or k // 2"),
    "g": (_int_in(1, MAX_CHANNELS), f"an integer in 1..{MAX_CHANNELS}"),
    "act": (lambda v: isinstance(v, bool), "True or False"),
    "shortcut": (lambda v: isinstance(v, bool), "True or False"),
    "e": (lambda v: finite_number(v) and 0 < v <= 2, "a number in (0, 2]"),
    "pool_k": (lambda v: isinstance(v, list) and 1 <= len(v) <= 8 and all(_odd_kernel(x) for x in v),
               f"a list of 1..8 odd integers in 1..{MAX_KERNEL}"),
    "down": (lambda v: _is_stride(v) and isinstance(v, int), "1, 2, 4 or 8"),
    "size": (lambda v: v is None, "None (use scale_factor)"),
    "scale_factor": (_is_stride, "1, 2, 4 or 8"),
    "mode": (lambda v: v in UPSAMPLE_MODES, " or ".join(repr(m) for m in UPSAMPLE_MODES)),
    "dim": (lambda v: v == 1 and not isinstance(v, bool) and isinstance(v, int), "1 (channels)"),
}
_ARG_NAMES = {"c2": "output width", "k": "kernel size", "s": "stride", "p": "padding", "g": "groups",
              "act": "activation", "e": "expansion", "pool_k": "pool kernel sizes", "down": "stride",
              "dim": "dimension"}


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


class _Bad(Exception):
    """A problem in one row; `at` is the path inside the row (e.g. (3, 1): args[1]) for its line."""

    def __init__(self, problem: str, *at: int):
        super().__init__(problem)
        self.problem, self.at = problem, at


class _Where:
    """Turns a path in the data into `file:line` (files) or the source name (dicts)."""

    def __init__(self, name: str, lines: dict[tuple, int]):
        self.name, self.lines = name, lines

    def __call__(self, *path: Any) -> str:
        for n in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return f"{self.name}:{line}"
        return self.name

    def err(self, path: tuple, problem: str) -> ConfigError:
        return ConfigError(f"{self(*path)}: {problem}")


def _read(source: str | Path | dict) -> tuple[dict, str, dict[tuple, int]]:
    if isinstance(source, dict):
        return plain_copy(source, "<dict>"), "<dict>", {}
    path = Path(source)
    data, lines = load_yaml(read_text(path), str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a YOLOR model config (top level is not a mapping)")
    return data, str(path), lines


def _resolve(value: Any, nc: int, anchors: Any) -> Any:
    table = {"nc": nc, "anchors": anchors, "None": None, "True": True, "False": False}
    if isinstance(value, str) and value in table:
        return copy.deepcopy(table[value])
    if isinstance(value, list):
        return [_resolve(v, nc, anchors) for v in value]
    if isinstance(value, dict):
        raise _Bad(f"unsupported argument {short(value)}", 3)
    return value


def _anchors_problem(anchors: Any) -> str | None:
    """None if `anchors` is a list of levels, each the same even number of positive finite numbers."""
    if not isinstance(anchors, list) or not 1 <= len(anchors) <= MAX_LEVELS:
        return f"must be a list of 1..{MAX_LEVELS} levels of (w, h) pairs, got {short(anchors)}"
    for k, a in enumerate(anchors):
        if not isinstance(a, list) or not a or len(a) % 2 or len(a) > 2 * MAX_ANCHORS:
            return f"level {k} must be a list of 1..{MAX_ANCHORS} (w, h) pairs, got {short(a)}"
        bad = [x for x in a if not (finite_number(x) and 0 < x <= MAX_ANCHOR_PX)]
        if bad:
            return f"level {k}: anchor sizes must be numbers in (0, {MAX_ANCHOR_PX:g}] px, got {short(bad[0])}"
        if len(a) != len(anchors[0]):
            return f"level {k} has {len(a) // 2} anchors, level 0 has {len(anchors[0]) // 2}"
    return None


def _multiple(data: dict, key: str, where: _Where) -> float:
    v = data.get(key, 1.0)
    if not finite_number(v) or not 0 < v <= MAX_MULTIPLE:
        raise where.err((key,), f"'{key}' must be a number in (0, {MAX_MULTIPLE:g}], got {short(v)}")
    return float(v)


def parse_yaml_cfg(source: str | Path | dict, nc: int | None = None) -> YamlSpec:
    """Parse a paper-branch yaml file (or the dict a checkpoint embeds) into a `YamlSpec`."""
    data, name, lines = _read(source)
    where = _Where(name, lines)
    for key in ("anchors", "backbone", "head"):
        if key not in data:
            raise ConfigError(f"{name}: missing key '{key}'")
    if nc is None or "nc" in data:  # the config's own nc is checked even when overridden
        own = data.get("nc")
        if isinstance(own, bool) or not isinstance(own, int) or not 1 <= own <= MAX_NC:
            raise where.err(("nc",), f"'nc' must be an integer in 1..{MAX_NC}, got {short(own)}")
    if nc is not None:
        if isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= MAX_NC:
            raise ConfigError(f"{name}: nc must be an integer in 1..{MAX_NC}, got {short(nc)}")
        data["nc"] = nc
    nc = data["nc"]
    gd, gw = _multiple(data, "depth_multiple", where), _multiple(data, "width_multiple", where)
    anchors = data["anchors"]
    problem = _anchors_problem(anchors)
    if problem:
        raise where.err(("anchors",), f"'anchors' {problem}")
    na = len(anchors[0]) // 2
    no = na * (nc + 5)

    rows: list[tuple[tuple, Any]] = []
    for part in ("backbone", "head"):
        v = data[part] if data[part] is not None else []
        if not isinstance(v, list):
            raise where.err((part,), f"'{part}' must be a list of [from, number, module, args] rows, got {short(v)}")
        rows += [((part, j), row) for j, row in enumerate(v)]
    if len(rows) > MAX_LAYERS:
        raise ConfigError(f"{name}: {len(rows)} layers (limit {MAX_LAYERS})")
    net = _Net(nc, no, gd, gw, anchors, len(rows))
    layers = []
    for i, (path, row) in enumerate(rows):
        try:
            layers.append(net.add(i, row))
        except _Bad as e:
            raise where.err((*path, *e.at), f"layer {i}: {e.problem}") from None
    if not layers or layers[-1].module not in HEAD_MODULES:
        raise ConfigError(f"{name}: the last layer must be IDetect or Detect")
    if net.blocks > MAX_BLOCKS:
        raise ConfigError(f"{name}: {net.blocks} repeated blocks in all (limit {MAX_BLOCKS}); lower depth_multiple")
    return YamlSpec(nc=nc, anchors=tuple(tuple(a) for a in anchors), layers=tuple(layers), data=data,
                    source=name)


class _Net:
    """Walks the rows in order, checking each against what came before (channels, strides)."""

    def __init__(self, nc: int, no: int, gd: float, gw: float, anchors: list, n_rows: int):
        self.nc, self.no, self.gd, self.gw, self.anchors, self.n_rows = nc, no, gd, gw, anchors, n_rows
        self.na = len(anchors[0]) // 2
        self.ch: list[int] = [3]  # ch[i + 1]: output channels of layer i; ch[0] the input image
        self.stride: list[Fraction] = [Fraction(1)]
        self.blocks = 0

    def add(self, i: int, row: Any) -> LayerSpec:
        if not isinstance(row, list) or len(row) != 4:
            raise _Bad(f"expected [from, number, module, args], got {short(row)}")
        f, n, m, args = row
        if not isinstance(m, str) or m not in KNOWN_MODULES:
            shown = printable(m) if isinstance(m, str) else short(m, 40)
            raise _Bad(f"unknown module '{shown}' (known: {', '.join(sorted(LAYERS))})", 2)
        kind = LAYERS[m]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REPEATS:
            raise _Bad(f"{m}: 'number' must be an integer in 1..{MAX_REPEATS}, got {short(n)}", 1)
        froms = self._froms(i, f, m)
        if args is None:
            args = []
        if not isinstance(args, list):
            raise _Bad(f"{m}: args must be a list, got {short(args)}", 3)
        args = _resolve(args, self.nc, self.anchors)
        if len(args) > len(kind.args) or len(args) < kind.required:
            if kind.width and not args:
                raise _Bad(f"{m} needs the output width as first argument", 3)
            takes = f"{kind.required}..{len(kind.args)}" if kind.required < len(kind.args) else str(kind.required)
            names = f" ({', '.join(kind.args)})" if kind.args else ""
            raise _Bad(f"{m} takes {takes} arguments{names}, got {len(args)}: {short(args)}", 3)
        for k, (arg, v) in enumerate(zip(kind.args, args)):
            check = ARG_CHECKS.get(arg)
            if check is not None and not check[0](v):
                if arg == "c2":
                    raise _Bad(f"{m} needs the output width as first argument: {check[1]}, got {short(v)}", 3, k)
                label = f" ({_ARG_NAMES[arg]})" if arg in _ARG_NAMES else ""
                raise _Bad(f"{m} args[{k}]{label} must be {check[1]}, got {short(v)}", 3, k)
        full = dict(zip(kind.args, [*args, *kind.defaults[len(args) - kind.required:]]))

        n = max(round(n * self.gd), 1) if n > 1 else n
        if n > MAX_REPEATS:
            raise _Bad(f"{m}: 'number' x depth_multiple = {n} repeats (limit {MAX_REPEATS})", 1)
        if n > 1 and not kind.width:
            raise _Bad(f"{m} cannot be repeated ('number' must be 1)", 1)
        self.blocks += n
        c1 = self.ch[froms[0] + 1]
        s_in = self.stride[froms[0] + 1]

        if kind.head:
            c2, s_out = self._head(i, m, froms, full)
            args = [full["nc"], full["anchors"], [self.ch[x + 1] for x in froms]]
        elif m == "Concat":
            s_in = self._same_stride(froms)
            c2, s_out = sum(self.ch[x + 1] for x in froms), s_in
        elif m in ("ReOrg", "DWT"):
            c2, s_out = 4 * c1, s_in * 2
        elif m == "nn.Upsample":
            c2, s_out = c1, s_in / Fraction(int(full["scale_factor"]))
        else:
            c2 = full["c2"]
            c2 = c2_arg = _make_divisible(c2 * self.gw, 8) if c2 != self.no else c2
            if not 1 <= c2 <= MAX_CHANNELS:
                raise _Bad(f"{m}: output width {c2} after width_multiple (limit {MAX_CHANNELS})", 3, 0)
            if "p" in full and full["p"] is not None and full["p"] != full["k"] // 2:
                raise _Bad(f"{m} args[3] (padding) must be None or k // 2 = {full['k'] // 2}, got {full['p']}", 3, 3)
            reps = 1 if kind.repeat_arg else n
            if reps > 1 and c1 != c2:
                raise _Bad(f"{m} repeated {reps} times needs as many input as output channels ({c1} != {c2})", 1)
            c2, factor = _block(m, c1, c2, full)
            s_out = s_in * factor ** reps
            args = [c1, c2_arg, *args[1:]]
            if kind.repeat_arg:
                args.insert(2, n)
                n = 1
        if not kind.head:
            self._check_map(m, c2, s_out)
        self.ch.append(c2)
        self.stride.append(s_out)
        return LayerSpec(i, f if isinstance(f, int) else tuple(f), n, m, tuple(args), c2)

    def _froms(self, i: int, f: Any, m: str) -> list[int]:
        many = m == "Concat" or m in HEAD_MODULES
        froms = [f] if isinstance(f, int) and not many else f if isinstance(f, list) and many else None
        if froms is None or not 1 <= len(froms) <= 64 or any(
                isinstance(x, bool) or not isinstance(x, int) or x >= i or x < -(i + 1) or (x < -1 and i + x < 0)
                for x in froms):
            kind = "a list of earlier layer indices" if many else "one earlier layer index"
            raise _Bad(f"{m}: invalid 'from' {short(f)} (expected {kind}; layer {i} can use -1 and 0..{i - 1})", 0)
        return [i + x if x < 0 else x for x in froms]  # -1 at layer 0: the input image

    def _same_stride(self, froms: list[int]) -> Fraction:
        strides = {self.stride[x + 1] for x in froms}
        if len(strides) != 1:
            seen = ", ".join(str(s) for s in sorted(strides))
            raise _Bad(f"Concat joins feature maps of different strides ({seen})", 0)
        return strides.pop()

    def _check_map(self, m: str, c: int, s: Fraction) -> None:
        if not 1 <= s <= MAX_STRIDE:
            raise _Bad(f"{m}: output stride {s} is outside 1..{MAX_STRIDE}")
        values = c * (CHECK_SIZE // int(s)) ** 2
        if values > MAX_ACTIVATION:
            raise _Bad(f"{m}: {c} channels at stride {s} make {values:,} values per {CHECK_SIZE}x{CHECK_SIZE} "
                       f"image (limit {MAX_ACTIVATION:,})")

    def _head(self, i: int, m: str, froms: list[int], full: dict) -> tuple[int, Fraction]:
        if i != self.n_rows - 1:
            raise _Bad(f"{m} must be the last layer", 2)
        if isinstance(full["nc"], bool) or not isinstance(full["nc"], int) or full["nc"] != self.nc:
            raise _Bad(f"{m} args[0] must be nc ({self.nc}), got {short(full['nc'])}", 3, 0)
        a = full["anchors"]
        if not isinstance(a, list) or len(a) != len(froms):
            raise _Bad(f"{m} needs one anchor list per input level ({len(froms)}), got {short(a)}", 3, 1)
        problem = _anchors_problem(a)
        if problem is None and len(a[0]) // 2 != self.na:
            problem = f"has {len(a[0]) // 2} anchors per level, 'anchors' has {self.na}"
        if problem:
            raise _Bad(f"{m} anchors {problem}", 3, 1)
        for x in froms:
            s = self.stride[x + 1]
            if s.denominator != 1:
                raise _Bad(f"{m} input {x} sits at a non-integer stride {s}", 0)
            self._check_map(m, self.no, s)
        return self.no, Fraction(1)


def _groups(c1: int, c2: int, g: int = 1) -> None:
    if c1 % g or c2 % g:
        raise _Bad(f"groups={g} must divide {c1} input and {c2} output channels", 3)


def _hidden(what: str, c_: int, how: str) -> int:
    if c_ < 1:
        raise _Bad(f"{what}hidden width {how} is 0", 3)
    return c_


def _block(m: str, c1: int, c2: int, a: dict) -> tuple[int, int]:
    """(output channels, stride factor) of one width module, as `nn.paper_layers` builds it; the widths
    it would make zero and the groups that do not divide its channels are refused."""
    if m in ("Conv", "Focus"):
        _groups(c1 * (4 if m == "Focus" else 1), c2, a["g"])
        return c2, a["s"] * (2 if m == "Focus" else 1)
    if m == "Bottleneck":
        _groups(_hidden("", int(c2 * a["e"]), f"int({c2} * e={a['e']})"), c2, a["g"])
        return c2, 1
    if m in ("BottleneckCSP", "BottleneckCSPF", "BottleneckCSP2"):
        c_ = c2 if m == "BottleneckCSP2" else int(c2 * a["e"])
        _groups(_hidden(f"{m}: ", c_, f"int({c2} * e={a['e']})"), c_, a["g"])
        return c2, 1
    if m == "SPP":
        if c1 // 2 < 1:
            raise _Bad(f"SPP needs at least 2 input channels, got {c1}", 0)
        return c2, 1
    if m == "SPPCSP":
        if len(a["pool_k"]) != 3:
            raise _Bad(f"SPPCSP takes exactly 3 pool kernel sizes, got {short(a['pool_k'])}", 3)
        _hidden("SPPCSP: ", int(2 * c2 * a["e"]), f"int(2 * {c2} * e={a['e']})")
        return c2, 1
    if m == "DownC":
        if c2 // 2 < 1:
            raise _Bad(f"DownC needs an output width of at least 2, got {c2}", 3, 0)
        return 2 * (c2 // 2), a["down"]
    raise AssertionError(m)  # pragma: no cover - every width module is handled above
