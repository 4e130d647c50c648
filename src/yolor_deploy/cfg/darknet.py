"""Main-branch YOLOR darknet configs (`cfg/yolor_*.cfg`) -> `DarknetSpec`.

Pure Python (no torch, never eval). Text is read the way upstream's `parse_model_cfg` reads it
(`[type]` headers, `key=value` lines, `#`/`;` comments), then every layer section is checked
statically: option types and ranges, references to earlier layers, channel counts and spatial
strides, the head width `len(mask)*(classes+5)`, and the number of parameters the network would have
(before anything is allocated). Errors are one line: `file:line: problem`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..contract import MAX_STRIDE
from ..errors import ConfigError
from .plain import (
    MAX_NC,
    MAX_STR,
    MAX_TEXT_BYTES,
    finite_number,
    printable,
    read_text,
    short,
)

# Layer types the builder in nn/darknet.py knows, with the options each requires.
LAYER_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "convolutional": ("filters", "size", "pad", "activation"),
    "route": ("layers",),
    "shortcut": ("from",),
    "upsample": ("stride",),
    "maxpool": ("size", "stride"),
    "reorg": (),
    "implicit_add": ("filters",),
    "implicit_mul": ("filters",),
    "implicit_cat": ("filters",),
    "shift_channels": ("from",),
    "control_channels": ("from",),
    "yolo": ("mask", "anchors", "classes"),
})
IMPLICIT_TYPES = frozenset({"implicit_add", "implicit_mul", "implicit_cat"})
ACTIVATIONS = frozenset({"linear", "leaky", "silu", "swish", "mish", "logistic"})

# Option keys upstream accepts in layer sections (utils/parse_config.py), by value type.
_INT_KEYS = frozenset({"batch_normalize", "filters", "size", "stride", "stride_x", "stride_y", "pad",
                       "groups", "classes", "num", "atoms", "na", "nc"})
_INT_LIST_KEYS = frozenset({"layers", "from", "mask"})
_FLOAT_LIST_KEYS = frozenset({"anchors"})
_STR_KEYS = frozenset({"activation", "weights_type", "weights_normalization", "nms_kind", "iou_loss"})
_OTHER_KEYS = frozenset({"jitter", "ignore_thresh", "truth_thresh", "random", "scale_x_y", "beta_nms",
                         "iou_normalizer", "cls_normalizer", "iou_thresh"})
_KNOWN_KEYS = _INT_KEYS | _INT_LIST_KEYS | _FLOAT_LIST_KEYS | _STR_KEYS | _OTHER_KEYS

# Ranges of the numeric options (the shipped cfgs: filters <= 1280, size <= 13, stride <= 2, 12 anchors).
MAX_FILTERS = 1 << 18  # a [yolo] input conv has len(mask) * (classes + 5) filters
MAX_SECTIONS = 2_000  # yolor_p6.cfg has 235
MAX_OPTIONS = 64  # per section
_INT_RANGES: Mapping[str, tuple[int, int]] = MappingProxyType({
    "batch_normalize": (0, 1), "filters": (1, MAX_FILTERS), "size": (1, 31), "stride": (1, 32),
    "stride_x": (1, 32), "stride_y": (1, 32), "pad": (0, 31), "groups": (1, MAX_FILTERS),
    "classes": (1, MAX_NC), "nc": (1, MAX_NC), "num": (1, 1024), "na": (1, 64), "atoms": (0, 1024)})
MAX_LIST = 1024  # items of a list option (anchors: 2 per anchor)
MAX_REF = 100_000  # |layer reference| in layers=/from=
MAX_ANCHOR_PX = 100_000.0
MAX_OTHER = 1e9  # |value| of any other numeric option (thresholds, learning rate, max_batches...)


@dataclass(frozen=True)
class SectionSpec:
    """One `[type]` section. `options` is read-only; list values are tuples. `line` is 1-based."""

    type: str
    options: Mapping[str, Any]
    line: int

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class DarknetSpec:
    """A checked darknet cfg. `sections[i]` builds `module_list.i`.

    Derived by the checker: `channels[i]` (output channels of section i), `yolo_layers` (section
    indices of the [yolo] layers, in cfg order = upstream output order), `strides` and `anchors`
    (per [yolo]: `anchors[mask]` as (w, h) pixel pairs). The parameter count is `nn.registry`'s (meta device).
    """

    nc: int
    anchors: tuple[tuple[tuple[float, float], ...], ...]
    sections: tuple[SectionSpec, ...]
    net: Mapping[str, Any]
    source: str = "<string>"
    branch: str = "main"
    strides: tuple[int, ...] = ()
    channels: tuple[int, ...] = ()
    yolo_layers: tuple[int, ...] = ()

    @property
    def na(self) -> int:
        return len(self.anchors[0])

    def to_dict(self) -> dict:
        """Plain JSON-able data; `from_dict` re-checks it."""
        return {"format": "darknet-cfg", "branch": self.branch, "source": self.source, "nc": self.nc,
                "net": _plain(self.net),
                "sections": [{"type": s.type, "options": _plain(s.options), "line": s.line} for s in self.sections]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DarknetSpec:
        src = data.get("source", "<dict>") if isinstance(data, Mapping) else "<dict>"
        name = src[:1000] if isinstance(src, str) else short(src)
        try:
            if len(data["sections"]) > MAX_SECTIONS:
                raise ConfigError(f"{name}: more than {MAX_SECTIONS} layers, not a model cfg")
            raw = [(s["type"], int(s["line"]), [(k, v, int(s["line"])) for k, v in s["options"].items()])
                   for s in data["sections"]]
            net_items = list(dict(data.get("net", {})).items())
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):  # only the dict's shape: no code
            raise ConfigError(f"{name}: not a darknet cfg spec (need 'sections' of type/options/line)") from None
        net = {k: _net_value(k, v, name) for k, v in net_items}  # ours, outside: a bug here is not the dict's fault
        spec = _build(name, net, raw, nc=None)
        if "nc" in data and data["nc"] != spec.nc:
            raise ConfigError(f"{name}: stored nc={short(data['nc'])} does not match the [yolo] classes ({spec.nc})")
        return spec


def parse_darknet_cfg(source: str | Path, nc: int | None = None) -> DarknetSpec:
    """Parse a darknet cfg file (a `Path`, or a `str` path; a `str` holding newlines is cfg text).

    `nc` retargets the model: `classes` of every [yolo], the filters of the conv feeding it and of
    the [implicit_mul] its [control_channels] reads become `len(mask) * (nc + 5)`.
    """
    if isinstance(source, str) and "\n" in source:
        text, name = source, "<string>"
        if len(text) > MAX_TEXT_BYTES:
            raise ConfigError(f"{name}: larger than {MAX_TEXT_BYTES // 1024} KiB, not a model cfg")
    else:
        name = str(source)
        text = read_text(Path(source), "cfg")
    net, raw = _tokenize(text, name)
    return _build(name, net, raw, nc)


# --- reading ----------------------------------------------------------------------------------
def _tokenize(text: str, name: str) -> tuple[dict, list]:
    """-> (net options, [(type, line, [(key, value, line), ...]), ...])."""
    sections: list = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ConfigError(f"{name}:{n}: malformed section header {short(line)}")
            if len(sections) > MAX_SECTIONS:
                raise ConfigError(f"{name}:{n}: more than {MAX_SECTIONS} layers, not a model cfg")
            sections.append((line[1:-1].strip(), n, []))
        elif "=" not in line:
            raise ConfigError(f"{name}:{n}: expected 'key=value', got {short(line)}")
        elif not sections:
            raise ConfigError(f"{name}:{n}: option before the first [section]")
        else:
            key, value = (s.strip() for s in line.split("=", 1))
            if len(sections[-1][2]) >= MAX_OPTIONS:
                raise ConfigError(f"{name}:{n}: more than {MAX_OPTIONS} options in one section")
            sections[-1][2].append((key, value, n))
    if not sections or sections[0][0] not in ("net", "network"):
        raise ConfigError(f"{name}:{sections[0][1] if sections else 1}: a darknet cfg must start with [net]")
    net = {}
    for k, v, n in sections[0][2]:
        net[k] = _net_value(k, v, f"{name}:{n}")
    return net, sections[1:]


def _net_value(key: Any, value: Any, where: str) -> Any:
    """A [net] option (training settings; kept, not used to build): a short name, number or text."""
    value = _auto(value)
    if not isinstance(key, str) or not key or len(key) > MAX_STR:
        raise ConfigError(f"{where}: bad [net] option name {short(key)}")
    if value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= MAX_STR):
        return value
    if finite_number(value) and abs(value) <= MAX_OTHER:
        return value
    raise ConfigError(f"{where}: bad value {key}={short(value)} in [net] (expected a finite number up to "
                      f"{MAX_OTHER:g} or a short text)")


def _auto(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except (ValueError, OverflowError):  # also an int of more than 4300 digits
            pass
    return value


def _coerce(key: str, value: Any, where: str) -> Any:
    """Typed option value; `value` is the cfg text or an already typed value (from a dict)."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: bad value {key}={short(value)} (expected {expected})")

    if key in _INT_LIST_KEYS or key in _FLOAT_LIST_KEYS:
        kind, label = (int, "integers") if key in _INT_LIST_KEYS else (float, "numbers")
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not 1 <= len(items) <= MAX_LIST:
            raise bad(f"1..{MAX_LIST} comma-separated {label}")
        try:
            out = tuple(_num(x, kind) for x in items)
        except (TypeError, ValueError, OverflowError):
            raise bad(f"comma-separated {label}") from None
        if key == "anchors" and any(not 0 < x <= MAX_ANCHOR_PX for x in out):
            raise bad(f"anchor sizes in (0, {MAX_ANCHOR_PX:g}] px")
        if key == "mask" and any(not 0 <= x < MAX_LIST for x in out):
            raise bad(f"anchor indices in 0..{MAX_LIST - 1}")
        if any(abs(x) > MAX_REF for x in out):
            raise bad(f"layer references within +-{MAX_REF}")
        return out
    if key in _INT_KEYS:
        if key == "size" and isinstance(value, str) and "," in value:
            raise ConfigError(f"{where}: size={short(value)} (mixed kernel sizes, MixConv2d) is not supported")
        try:
            number = _num(value, int)
        except (TypeError, ValueError, OverflowError):
            raise bad("an integer") from None
        lo, hi = _INT_RANGES[key]
        if not lo <= number <= hi:
            shown = short(number if isinstance(value, str) else value)
            raise ConfigError(f"{where}: bad value {key}={shown} (expected an integer in {lo}..{hi})")
        return number
    if key in _STR_KEYS:
        if not isinstance(value, str) or not value or len(value) > MAX_STR:
            raise bad("a name")
        return value
    other = _auto(value)
    if isinstance(other, bool) or (isinstance(other, str) and len(other) > MAX_STR) or (
            isinstance(other, (int, float)) and not (finite_number(other) and abs(other) <= MAX_OTHER)):
        raise bad(f"a finite number up to {MAX_OTHER:g}")
    if not isinstance(other, (str, int, float)):
        raise bad("a number")
    return other


def _num(x: Any, kind: type) -> int | float:
    """`x` (cfg text or a typed value from a dict) as `kind`; floats must be finite."""
    if isinstance(x, bool):
        raise TypeError
    if isinstance(x, str):
        x = kind(x.strip())
    elif kind is int and not (isinstance(x, int) or (isinstance(x, float) and x.is_integer())):
        raise TypeError
    elif not isinstance(x, (int, float)):
        raise TypeError
    out = kind(x)
    if isinstance(out, float) and not math.isfinite(out):
        raise ValueError
    return out


# --- checking ---------------------------------------------------------------------------------
class _Sec:
    """Mutable working copy of a section while checking (option lines kept for messages)."""

    def __init__(self, name: str, type_: str, line: int, items: list):
        self.type, self.line = type_, line
        self.options: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.name = name
        if not isinstance(type_, str) or type_ not in LAYER_TYPES:
            raise ConfigError(f"{name}:{line}: unknown layer type [{_text(type_)}]")
        if len(items) > MAX_OPTIONS:
            raise ConfigError(f"{name}:{line}: more than {MAX_OPTIONS} options in one section")
        for key, value, n in items:
            if not isinstance(key, str) or key not in _KNOWN_KEYS:
                raise ConfigError(f"{name}:{n}: unsupported option '{_text(key)}' in [{type_}]")
            if key in self.options:
                raise ConfigError(f"{name}:{n}: option '{key}' given twice in [{type_}]")
            self.options[key], self.lines[key] = _coerce(key, value, f"{name}:{n}"), n
        for key in LAYER_TYPES[type_]:
            if key not in self.options:
                raise ConfigError(f"{name}:{line}: [{type_}] is missing option '{key}'")

    def err(self, key: str | None, problem: str) -> ConfigError:
        line = self.lines.get(key, self.line) if key is not None else self.line
        return ConfigError(f"{self.name}:{line}: [{self.type}] {problem}")


def _text(x: Any) -> str:
    """A name from the cfg for a message: itself if printable text (cut to 40 characters), else escaped."""
    return printable(x) if isinstance(x, str) else short(x, 40)


def _build(name: str, net: dict, raw: list, nc: int | None) -> DarknetSpec:
    secs = [_Sec(name, t, line, items) for t, line, items in raw]
    if nc is not None:
        _retarget(secs, nc, name)
    channels, strides, yolo = _check(secs, name)
    head = [secs[i] for i in yolo]
    classes = {s.options["classes"] for s in head}
    if len(classes) != 1:
        raise head[-1].err("classes", f"classes differ between [yolo] layers: {sorted(classes)}")
    anchors = tuple(tuple(_anchor_pairs(s)) for s in head)
    if len({len(a) for a in anchors}) != 1:
        raise head[-1].err("mask", "all [yolo] layers must use the same number of anchors")
    sections = tuple(SectionSpec(s.type, MappingProxyType(dict(s.options)), s.line) for s in secs)
    return DarknetSpec(nc=classes.pop(), anchors=anchors, sections=sections, net=MappingProxyType(dict(net)),
                       source=name, strides=tuple(strides), channels=tuple(channels), yolo_layers=tuple(yolo))


def _anchor_pairs(s: _Sec) -> list[tuple[float, float]]:
    a = s.options["anchors"]
    return [(a[2 * m], a[2 * m + 1]) for m in s.options["mask"]]


def _ref(s: _Sec, i: int, key: str, j: int) -> int:
    k = i + j if j < 0 else j
    if not 0 <= k < i:
        raise s.err(key, f"{key}={j} refers to a non-existent layer (layer {i} can use layers 0..{i - 1})")
    return k


def _check(secs: list[_Sec], name: str) -> tuple[list[int], list[int], list[int]]:
    """Walk the layers: output channels and stride of each (stride None = implicit vector)."""
    ch: list[int] = []
    st: list[Fraction | None] = []
    yolo: list[int] = []
    c = 3
    s: Fraction | None = Fraction(1)
    for i, sec in enumerate(secs):
        o, t = sec.options, sec.type
        if t in IMPLICIT_TYPES:
            c, s = _positive(sec, "filters"), None
        elif t == "route":
            refs = [_ref(sec, i, "layers", j) for j in o["layers"]]
            if any(st[k] is None for k in refs) or len({st[k] for k in refs}) != 1:
                raise sec.err("layers", "joins layers that are not feature maps of one stride")
            c, s = sum(ch[k] for k in refs), st[refs[0]]
        else:
            if s is None:
                raise sec.err(None, f"takes an implicit vector (layer {i - 1}) as its input")
            if t == "convolutional":
                c, s = _conv(sec, c, s)
            elif t in ("shortcut", "shift_channels", "control_channels"):
                if t != "shortcut" and len(o["from"]) != 1:
                    raise sec.err("from", "takes exactly one 'from' layer")
                if t == "shortcut" and o.get("activation", "linear") != "linear":
                    raise sec.err("activation", "activation other than linear is not supported (upstream ignores it)")
                for j in o["from"]:
                    k = _ref(sec, i, "from", j)
                    if ch[k] != c or (t == "shortcut" and st[k] != s) or (st[k] not in (None, s)):
                        raise sec.err("from", f"layer {k} ({ch[k]} channels) does not match its input ({c} channels)")
            elif t == "upsample":
                s = s / _positive(sec, "stride")
            elif t == "maxpool":
                _positive(sec, "size")
                s = s * _positive(sec, "stride")
            elif t == "reorg":
                c, s = 4 * c, s * 2
            elif t == "yolo":
                _check_yolo(sec, c, s)
                yolo.append(i)
        if c > MAX_FILTERS:
            raise sec.err(None, f"outputs {c} channels (limit {MAX_FILTERS})")
        if s is not None and not Fraction(1, MAX_STRIDE) <= s <= MAX_STRIDE:
            raise sec.err(None, f"output stride {s} is outside 1/{MAX_STRIDE}..{MAX_STRIDE}")
        ch.append(c)
        st.append(s)
    if not yolo:
        raise ConfigError(f"{name}: no [yolo] layer")
    return ch, [int(st[i] or 0) for i in yolo], yolo


def _positive(sec: _Sec, key: str) -> int:
    v = sec.options[key]
    if not isinstance(v, int) or v < 1:
        raise sec.err(key, f"{key} must be a positive integer, got {v!r}")
    return v


def _conv(sec: _Sec, c: int, s: Fraction) -> tuple[int, Fraction]:
    o = sec.options
    filters, groups = _positive(sec, "filters"), o.get("groups", 1)
    _positive(sec, "size")
    if "stride" in o:
        stride = _positive(sec, "stride")
    elif "stride_x" in o and "stride_y" in o:
        stride = _positive(sec, "stride_x")
        if o["stride_y"] != stride:
            raise sec.err("stride_y", "stride_x != stride_y is not supported")
    else:
        raise sec.err(None, "is missing option 'stride'")
    if o.get("batch_normalize", 0) not in (0, 1):
        raise sec.err("batch_normalize", "batch_normalize must be 0 or 1")
    if o["activation"] not in ACTIVATIONS:
        raise sec.err("activation", f"unknown activation '{o['activation']}' (known: {', '.join(sorted(ACTIVATIONS))})")
    if not isinstance(groups, int) or groups < 1 or c % groups or filters % groups:
        raise sec.err("groups", f"groups={groups!r} does not divide {c} input / {filters} output channels")
    return filters, s * stride


def _check_yolo(sec: _Sec, c: int, s: Fraction) -> None:
    o = sec.options
    n = len(o["anchors"]) // 2
    if len(o["anchors"]) % 2:
        raise sec.err("anchors", "anchors must be (w, h) pairs")
    if "num" in o and o["num"] != n:
        raise sec.err("num", f"num={o['num']} but {n} anchors are given")
    if any(not 0 <= m < n for m in o["mask"]):
        raise sec.err("mask", f"mask {list(o['mask'])} indexes outside the {n} anchors")
    nc = _positive(sec, "classes")
    if c != len(o["mask"]) * (nc + 5):
        raise sec.err(None, f"input has {c} channels, expected len(mask)*(classes+5) = {len(o['mask']) * (nc + 5)}")
    if s.denominator != 1:
        raise sec.err(None, f"sits at a non-integer stride {s}")


def _retarget(secs: list[_Sec], nc: int, name: str) -> None:
    """Set classes=nc in every [yolo] and resize the head convs / [implicit_mul] feeding it."""
    if isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= MAX_NC:
        raise ConfigError(f"{name}: nc must be a positive integer up to {MAX_NC}, got {short(nc)}")
    for i, sec in enumerate(secs):
        if sec.type != "yolo":
            continue
        sec.options["classes"] = nc
        width = len(sec.options["mask"]) * (nc + 5)
        j = i - 1
        while j >= 0 and secs[j].type in ("control_channels", "shift_channels"):
            if secs[j].type == "control_channels":
                k = _ref(secs[j], j, "from", secs[j].options["from"][0])
                if secs[k].type == "implicit_mul":
                    secs[k].options["filters"] = width
            j -= 1
        if j < 0 or secs[j].type != "convolutional":
            raise sec.err(None, "cannot retarget nc: not fed by a [convolutional] layer")
        secs[j].options["filters"] = width


def _plain(options: Mapping[str, Any]) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
