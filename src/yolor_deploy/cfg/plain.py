"""Bounded reading of config data into plain values, before any schema is applied.

Configs come from files the user names and from dicts pickled inside checkpoints; both are hostile
until checked. Here they become plain data (dict with str keys, list, str, int, float, bool, None)
within fixed bounds: text size, nesting depth, number of values, string length. YAML is read with
a loader that refuses anchors and aliases (no billion laughs, no self-referential lists) and keeps
the line of every value, so later checks can say `file:line: problem`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..fs import open_regular

MAX_TEXT_BYTES = 256 * 1024  # upstream's largest config is ~18 KB (a darknet .cfg); yaml ones ~2 KB
MAX_DEPTH = 12  # a yaml config nests 5 deep (head -> row -> args -> anchors -> level)
MAX_VALUES = 10_000  # yolor-d6.yaml holds ~350 values
MAX_STR = 200  # longest real string: a module name ("BottleneckCSP2")

# Bounds on the model a config describes, shared by both parsers.
MAX_NC = 10_000  # classes
MAX_PARAMS = 1_000_000_000  # parameters, computed from the spec (the largest YOLOR, yolor-d6: 151.8 M)

Path_ = tuple  # a location in the data: keys and list indices from the top, e.g. ("head", 3, 3, 0)


def params_message(name: str, params: int) -> str:
    """The one-line refusal of a config describing more than `MAX_PARAMS` parameters."""
    return (f"{name}: the network would have {params / 1e6:,.0f} M parameters (limit {MAX_PARAMS / 1e6:,.0f} M; "
            f"the largest YOLOR, yolor-d6, has 151.8 M)")


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters; never fails (huge ints have no repr past 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile object's __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def printable(text: str, limit: int = 40) -> str:
    """A name taken from a config, safe in a one-line message: itself if printable (cut to `limit`), else
    escaped (`short`): no newline or terminal escape from a config reaches the user's terminal."""
    if text.isprintable():
        return text if len(text) <= limit else text[:limit - 3] + "..."
    return short(text, limit)


def read_text(path: Path, what: str = "config") -> str:
    """A config file's text (UTF-8), refusing files larger than `MAX_TEXT_BYTES`."""
    try:
        with open_regular(path) as f:  # a FIFO or device is refused before it could block
            raw = f.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_TEXT_BYTES // 1024} KiB, not a model {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}), not a model {what}") from None


class _Refused(Exception):
    def __init__(self, line: int | None, problem: str):
        super().__init__(problem)
        self.line, self.problem = line, problem


# libyaml's parser when present (fast; nesting capped at 1000 by libyaml itself), else PyYAML's own.
_PARSER = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}


def load_yaml(text: str, name: str) -> tuple[Any, dict[Path_, int]]:
    """YAML text -> (plain data, {path: 1-based line}). Every problem is a one-line `ConfigError`.

    Nodes are composed here from the parser's events (not by PyYAML's composer), so anchors and aliases
    are refused where they appear, and depth and size are bounded before anything is built.
    """
    if len(text) > MAX_TEXT_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_TEXT_BYTES // 1024} KiB, not a model config")
    parser = _PARSER(text)
    lines: dict[Path_, int] = {}
    try:
        parser.get_event()  # StreamStart
        if parser.check_event(yaml.StreamEndEvent):
            return None, lines
        parser.get_event()  # DocumentStart
        data = _Composer(parser, lines).node((), 1)
        parser.get_event()  # DocumentEnd
        if not parser.check_event(yaml.StreamEndEvent):
            raise _Refused(parser.peek_event().start_mark.line + 1, "more than one YAML document")
    except _Refused as e:
        raise ConfigError(f"{name}:{e.line}: {e.problem}" if e.line else f"{name}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = " ".join(str(getattr(e, "problem", None) or "malformed").split())[:100]
        at = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ConfigError(f"{at}: invalid YAML ({problem})") from None
    finally:
        parser.dispose()
    return data, lines


class _Composer:
    """Plain values from parser events: no anchors or aliases, standard tags only, bounded depth and count."""

    def __init__(self, parser: Any, lines: dict[Path_, int]):
        self.parser, self.lines, self.count = parser, lines, 0

    def node(self, path: Path_, depth: int) -> Any:
        event = self.parser.get_event()
        line = event.start_mark.line + 1
        self.lines[path] = line
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(line, f"YAML aliases (*{printable(event.anchor or '')}) are not allowed in a model config")
        if event.anchor is not None:
            raise _Refused(line, f"YAML anchors (&{printable(event.anchor)}) are not allowed in a model config")
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Refused(line, f"more than {MAX_VALUES} values, not a model config")
        if depth > MAX_DEPTH:
            raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels, not a model config")
        tag = event.tag
        if isinstance(event, yaml.ScalarEvent):
            if tag is None or tag == "!":
                tag = self.parser.resolve(yaml.ScalarNode, event.value, event.implicit)
            if tag not in _SCALAR_TAGS:
                raise _Refused(line, f"unsupported YAML type {_tag_name(tag)} (a model config holds numbers, "
                                     f"strings, lists and mappings)")
            try:
                value = self.parser.construct_object(yaml.ScalarNode(tag, event.value, style=event.style))
            except (ValueError, OverflowError, yaml.YAMLError):  # e.g. an integer of more than 4300 digits
                raise _Refused(line, f"unreadable number {short(event.value, 30)}") from None
            if isinstance(value, str) and len(value) > MAX_STR:
                raise _Refused(line, f"string of {len(value)} characters (limit {MAX_STR}), not a model config")
            return value
        if tag not in (None, "!", _TAG + "seq", _TAG + "map"):
            raise _Refused(line, f"unsupported YAML type {_tag_name(tag)} (a model config holds numbers, "
                                 f"strings, lists and mappings)")
        if isinstance(event, yaml.SequenceStartEvent):
            out: list = []
            while not self.parser.check_event(yaml.SequenceEndEvent):
                out.append(self.node((*path, len(out)), depth + 1))
            self.parser.get_event()
            return out
        mapping: dict[str, Any] = {}
        while not self.parser.check_event(yaml.MappingEndEvent):
            key_line = self.parser.peek_event().start_mark.line + 1
            key = self.node((*path, "<key>"), depth + 1)
            if not isinstance(key, str):
                raise _Refused(key_line, f"mapping key {short(key)} is not a string")
            if key in mapping:
                raise _Refused(key_line, f"key '{printable(key)}' given twice")
            mapping[key] = self.node((*path, key), depth + 1)
        self.parser.get_event()
        return mapping


def _tag_name(tag: str) -> str:
    return printable("!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag)


def plain_copy(data: Any, name: str) -> Any:
    """A dict given by the caller (e.g. unpickled from a checkpoint) -> a fresh copy of plain values.

    Refuses anything but dict (str keys), list/tuple (copied as lists), str, int, float, bool, None,
    deeper than `MAX_DEPTH`, with more than `MAX_VALUES` values (shared sub-lists count each time they
    are reached, so reference bombs stop early; cycles stop at the depth bound) or longer strings.
    """
    count = [0]

    def copy(x: Any, where: str, depth: int) -> Any:
        count[0] += 1
        if count[0] > MAX_VALUES:
            raise ConfigError(f"{name}: more than {MAX_VALUES} values, not a model config")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{name}: {where or 'data'} nested deeper than {MAX_DEPTH} levels "
                              f"(or self-referential), not a model config")
        if x is None or isinstance(x, bool):
            return x
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return float(x)
        if isinstance(x, str):
            if len(x) > MAX_STR:
                raise ConfigError(f"{name}: {where}: string of {len(x)} characters (limit {MAX_STR})")
            return str(x)
        if isinstance(x, (list, tuple)):
            return [copy(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(x)]
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                if not isinstance(k, str) or len(k) > MAX_STR:
                    raise ConfigError(f"{name}: {where or 'top level'}: key {short(k)} is not a short string")
                out[str(k)] = copy(v, f"{where}.{printable(k)}" if where else short(str(k)), depth + 1)
            return out
        raise ConfigError(f"{name}: {where or 'top level'}: unsupported value of type {type(x).__name__}")

    return copy(data, "", 1)


def finite_number(x: Any) -> bool:
    """An int or float (not bool) that is finite."""
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and math.isfinite(x))
