"""Allowlist-only unpickling of PyTorch checkpoint files.

`torch.load` is given a pickle module whose `Unpickler.find_class` resolves only:
- plain data types, numpy array reconstruction and torch tensor/storage rebuild functions;
- the upstream YOLOR classes and torch.nn module classes, each mapped to an inert `StandIn` that
  only records the state it is given (no upstream or nn code runs, nothing is imported from
  `sys.path`).
Any other global (for example `os.system`) raises `UnsafePickleError` naming it, before it is
called: nothing of the payload runs.
"""
from __future__ import annotations

import collections
import copyreg
import io
import pickle
import types
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, UnsafePickleError, first_line

# Real objects a checkpoint may reference (data constructors only).
_SAFE: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): __import__("_codecs").encode,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
}
for _b in ("set", "frozenset", "dict", "list", "tuple", "int", "float", "bool", "str", "bytes", "bytearray",
           "complex", "slice", "range"):
    _SAFE[("builtins", _b)] = _SAFE[("__builtin__", _b)] = getattr(__import__("builtins"), _b)
for _np in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _SAFE[(_np, "_reconstruct")] = (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct
    _SAFE[(_np, "scalar")] = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
_SAFE[("numpy", "ndarray")] = np.ndarray
_SAFE[("numpy", "dtype")] = np.dtype
for _dt in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.int32, torch.uint8,
            torch.bool):
    _SAFE[("torch", str(_dt).split(".")[-1])] = _dt

# Upstream YOLOR class names (both branches), mapped to stand-ins.
UPSTREAM_CLASSES: dict[str, frozenset[str]] = {
    "models.yolo": frozenset({"Model", "Detect", "IDetect"}),
    "models.common": frozenset({
        "DWT", "ImplicitA", "ImplicitM", "ReOrg", "Conv", "ConvSig", "ConvSqu", "Bottleneck", "BottleneckG",
        "BottleneckCSP", "BottleneckCSPF", "BottleneckCSPL", "BottleneckCSPLG", "BottleneckCSPSE",
        "BottleneckCSPSEA", "BottleneckCSPSAM", "BottleneckCSPSAMA", "BottleneckCSPSAMB", "BottleneckCSPGC",
        "BottleneckCSPDNL", "BottleneckCSP2", "BottleneckCSP2SAM", "VoVCSP", "SPP", "SPPCSP", "Focus", "MP",
        "DownD", "DownC", "DNL", "GC", "SAM", "SAMA", "SAMB", "Concat", "NMS", "Flatten", "Classify",
        "TransformerLayer", "TransformerBlock", "BottleneckCSPTR", "BottleneckCSP2TR", "SPPCSPTR", "TR"}),
    "models.experimental": frozenset({"CrossConv", "C3", "Sum", "GhostConv", "GhostBottleneck", "MixConv2d"}),
    "utils.activations": frozenset({"Swish", "Hardswish", "MemoryEfficientSwish", "Mish", "MemoryEfficientMish",
                                    "FReLU"}),
}
_TORCH_NN_MODULES = ("torch.nn.modules.",)


class StandIn:
    """Inert stand-in for a pickled module: keeps the pickled attributes, runs no code."""

    qualname = ""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self):
        return f"<StandIn {self.qualname}>"


_STANDINS: dict[str, type] = {}


def _stand_in(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STANDINS:
        _STANDINS[key] = type(name, (StandIn,), {"qualname": key})
    return _STANDINS[key]


def _is_torch_nn_module(module: str, name: str) -> bool:
    if not module.startswith(_TORCH_NN_MODULES):
        return False
    try:
        obj = getattr(__import__(module, fromlist=[name]), name, None)
    except ImportError:
        return False
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def resolve_global(module: str, name: str):
    """The object a pickle GLOBAL may resolve to, or UnsafePickleError."""
    if (module, name) in _SAFE:
        return _SAFE[(module, name)]
    if module.startswith("numpy.dtypes") and name.endswith("DType"):
        return getattr(np.dtypes, name)
    if name in UPSTREAM_CLASSES.get(module, ()) or _is_torch_nn_module(module, name):
        return _stand_in(module, name)
    raise UnsafePickleError(f"refusing global '{module}.{name}': not in the allowlist")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        return resolve_global(module, name)


# torch.load(pickle_module=...) subclasses `Unpickler` of the module it is given.
allowlist_pickle = types.SimpleNamespace(Unpickler=_Unpickler, load=lambda f, **kw: _Unpickler(f, **kw).load(),
                                         __name__="yolor_deploy_allowlist_pickle")


def safe_torch_load(path: str | Path):
    """Read a torch checkpoint with the allowlist unpickler. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] != b"PK" and head[:1] != b"\x80":
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a torch zip archive nor a pickle)")
        return torch.load(path, map_location="cpu", pickle_module=allowlist_pickle, weights_only=False)
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}; the file may be malicious, nothing of it was run") from None
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, RuntimeError, ValueError, KeyError,
            io.UnsupportedOperation, OSError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt?): {first_line(e)}") from None
