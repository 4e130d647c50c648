"""Turn unpickled stand-in module trees into plain state dicts, and check state dicts strictly."""
from __future__ import annotations

from collections import OrderedDict

import torch

from ..errors import CheckpointError
from .unpickler import StandIn


def stand_in_state_dict(root: StandIn) -> OrderedDict[str, torch.Tensor]:
    """Parameters and persistent buffers of a pickled module tree, keyed like `nn.Module.state_dict()`."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()

    def walk(mod, prefix: str) -> None:
        d = getattr(mod, "__dict__", {})
        for k, v in (d.get("_parameters") or {}).items():
            if v is not None:
                out[prefix + k] = v.detach()
        skip = d.get("_non_persistent_buffers_set") or set()
        for k, v in (d.get("_buffers") or {}).items():
            if v is not None and k not in skip:
                out[prefix + k] = v
        for k, child in (d.get("_modules") or {}).items():
            if child is not None:
                walk(child, f"{prefix}{k}.")

    walk(root, "")
    return out


def stand_in_modules(root: StandIn, prefix: str = ""):
    """Yield (dotted name, stand-in) for every module in a pickled tree."""
    yield prefix.rstrip("."), root
    for k, child in (getattr(root, "__dict__", {}).get("_modules") or {}).items():
        if child is not None:
            yield from stand_in_modules(child, f"{prefix}{k}.")


def to_fp32(sd: dict) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in sd.items())


def state_differences(model: torch.nn.Module, sd: dict, limit: int = 6) -> list[str]:
    """Human-readable differences between a model's state_dict and `sd` (keys and shapes)."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in sd]
    unexpected = [k for k in sd if k not in ours]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(ours[k].shape)}"
              for k in ours if k in sd and tuple(sd[k].shape) != tuple(ours[k].shape)]
    diffs = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            diffs.append(f"{len(items)} {label}: " + "; ".join(items[:limit]) + more)
    return diffs


def load_strict(model: torch.nn.Module, sd: dict, where: str, what: str = "the architecture",
                hint=None) -> None:
    """Load `sd` only if keys and shapes match exactly; else one error listing the differences.
    `hint()` (called only on failure) may add a suggestion."""
    diffs = state_differences(model, sd)
    if diffs:
        raise CheckpointError(f"{where}: weights do not fit {what}: " + " | ".join(diffs) + (hint() if hint else ""))
    model.load_state_dict(sd, strict=True)
