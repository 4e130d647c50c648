"""Turn unpickled stand-in module trees into plain state dicts, and check state dicts strictly.

The trees come from untrusted files: every attribute read here is type-checked; the walk is iterative,
visits each module once (a module reached twice, or inside itself, is refused: real YOLOR models share
none, and sharing would let a small file make the walk exponential) and is bounded (`limits.MAX_MODULES`,
`MAX_MODULE_DEPTH`, `MAX_NAME_CHARS`, `MAX_PATH_CHARS`, `MAX_STATE_ENTRIES`); errors are `CheckpointError`s
(the caller adds the file name)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import torch

from ..errors import CheckpointError
from . import limits
from .inert import StandIn, clip


def _attr_dict(mod: StandIn, attr: str, where: str) -> dict:
    value = mod.__dict__.get(attr)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(type(k) is str and len(k) <= limits.MAX_NAME_CHARS for k in value):
        raise CheckpointError(f"pickled module {clip(where, 200)}: {attr} is {clip(value)}, not a dict keyed by "
                              "names")
    return value


def walk_stand_ins(root: StandIn) -> Iterator[tuple[str, StandIn]]:
    """(dotted prefix with trailing '.', stand-in) for every module of a pickled tree, in pickled order."""
    if not isinstance(root, StandIn):
        raise CheckpointError(f"expected a pickled module, found {clip(root)}")
    stack: list[tuple[str, StandIn, tuple[int, ...]]] = [("", root, ())]
    seen: set[int] = {id(root)}
    while stack:
        prefix, mod, ancestors = stack.pop()
        if len(ancestors) > limits.MAX_MODULE_DEPTH:
            raise CheckpointError(f"pickled modules nest deeper than {limits.MAX_MODULE_DEPTH} levels at "
                                  f"{clip(prefix, 200)}")
        yield prefix, mod
        children = []
        for k, child in _attr_dict(mod, "_modules", prefix.rstrip(".") or "<root>").items():
            if child is None:
                continue
            if not isinstance(child, StandIn):
                raise CheckpointError(f"pickled module {clip(prefix + k, 200)} is {clip(child)}, not a module")
            if id(child) in ancestors or child is mod:
                raise CheckpointError(f"pickled module {clip(prefix + k, 200)} contains itself")
            if id(child) in seen:
                raise CheckpointError(f"pickled module {clip(prefix + k, 200)} also appears elsewhere in the model "
                                      "(shared modules are not supported)")
            seen.add(id(child))
            if len(seen) > limits.MAX_MODULES:
                raise CheckpointError(f"the pickled model has more than {limits.MAX_MODULES:,} modules")
            path = f"{prefix}{k}."
            if len(path) > limits.MAX_PATH_CHARS:
                raise CheckpointError(f"pickled module {clip(path, 200)}: its dotted name is over "
                                      f"{limits.MAX_PATH_CHARS} characters")
            children.append((path, child, ancestors + (id(mod),)))
        stack.extend(reversed(children))


def stand_in_state_dict(root: StandIn) -> OrderedDict[str, torch.Tensor]:
    """Parameters and persistent buffers of a pickled module tree, keyed like `nn.Module.state_dict()`."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()

    def add(key: str, value: torch.Tensor) -> None:
        out[key] = value
        if len(out) > limits.MAX_STATE_ENTRIES:
            raise CheckpointError(f"the pickled model has more than {limits.MAX_STATE_ENTRIES:,} parameters and "
                                  "buffers")

    for prefix, mod in walk_stand_ins(root):
        where = prefix.rstrip(".") or "<root>"
        for k, v in _attr_dict(mod, "_parameters", where).items():
            if v is None:
                continue
            if not isinstance(v, torch.Tensor):
                raise CheckpointError(f"pickled module {clip(where, 200)}: parameter {clip(k)} is {clip(v)}, "
                                      "not a tensor")
            add(prefix + k, v.detach())
        skip = mod.__dict__.get("_non_persistent_buffers_set") or set()
        if not isinstance(skip, (set, frozenset)):
            raise CheckpointError(f"pickled module {clip(where, 200)}: _non_persistent_buffers_set is {clip(skip)}")
        for k, v in _attr_dict(mod, "_buffers", where).items():
            if v is None or k in skip:
                continue
            if not isinstance(v, torch.Tensor):
                raise CheckpointError(f"pickled module {clip(where, 200)}: buffer {clip(k)} is {clip(v)}, "
                                      "not a tensor")
            add(prefix + k, v)
    return out


def stand_in_modules(root: StandIn, prefix: str = ""):
    """Yield (dotted name, stand-in) for every module in a pickled tree."""
    for p, mod in walk_stand_ins(root):
        yield (prefix + p).rstrip("."), mod


def to_fp32(sd: dict) -> OrderedDict[str, torch.Tensor]:
    """Floating tensors as fp32; a tensor listed under several keys is converted once."""
    done: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in sd.items():
        if torch.is_tensor(v) and v.is_floating_point():
            if id(v) not in done:
                done[id(v)] = (v, v.float())  # keeps v alive: its id stays unique
            v = done[id(v)][1]
        out[k] = v
    return out


def state_differences(model: torch.nn.Module, sd: dict, limit: int = 1) -> list[str]:
    """Human-readable differences between a model's state_dict and `sd`: per kind (missing, unexpected,
    shape) the count and the first `limit` tensors, so one error line stays short on a large model."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in sd]
    unexpected = [clip(k, 200) for k in sd if k not in ours]
    shapes = [f"{k} is {tuple(sd[k].shape)} in the checkpoint, {tuple(ours[k].shape)} in the model"
              for k in ours if k in sd and tuple(sd[k].shape) != tuple(ours[k].shape)]
    diffs = []
    for label, items in ((f"of the model's {len(ours)} tensors missing", missing),
                         ("unexpected", unexpected), ("with another shape", shapes)):
        if items:
            first = "first" if len(items) > limit else "only"
            diffs.append(f"{len(items)} {label} ({first}: " + "; ".join(items[:limit]) + ")")
    return diffs


def load_strict(model: torch.nn.Module, sd: dict, where: str, what: str = "the architecture",
                hint=None) -> None:
    """Load `sd` only if keys and shapes match exactly; else one error listing the differences.
    `hint()` (called only on failure) may add a suggestion."""
    for k, v in sd.items():
        if type(k) is not str or not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{where}: state_dict entry {clip(k)} is {clip(v)}, not a named tensor")
    diffs = state_differences(model, sd)
    if diffs:
        raise CheckpointError(f"{where}: weights do not fit {what}: " + ", ".join(diffs) + (hint() if hint else ""))
    model.load_state_dict(sd, strict=True)
