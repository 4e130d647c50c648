"""Policy: what a checkpoint's pickle may name and build (a checkpoint is untrusted input).

- `resolve_global`: a GLOBAL resolves only to the names in `SAFE` (checked constructors, torch/numpy
  value names) or to an inert stand-in for an upstream YOLOR class (`UPSTREAM_CLASSES`) or an already
  imported torch.nn module class; anything else is an `UnsafePickleError`;
- the *checked constructors* take the arguments real checkpoints use and refuse anything else
  (`bytearray(12e9)`, `_codecs.encode(s, 'punycode')`, `set(<10^8 items>)`); tensors are rebuilt only
  on a storage the archive handed out, addressing only it, without overlapping themselves;
- `check_key`, `ndarray_setstate`, `dtype_setstate`: the checks the virtual machine (`unpickler.py`)
  applies to dict keys and BUILD states.

Every bytes-making call is charged to the file's budget (`budget.LoadContext`).
"""
from __future__ import annotations

import collections
import math
import sys

import numpy as np
import torch

from ..errors import CheckpointError, UnsafePickleError, first_line
from . import limits
from .budget import LoadContext
from .inert import STORAGE_DTYPES, SafeCall, Storage, StorageType, clip, stand_in

_NP_MULTIARRAY = (np._core if hasattr(np, "_core") else np.core).multiarray  # type: ignore[attr-defined]


def _int(v, what: str, lo: int = 0, hi: int = 1 << 62) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise CheckpointError(f"{what} is {clip(v)}, not an integer in [{lo}, {hi}]")
    return v


def _dims(v, what: str) -> tuple[int, ...]:
    if not isinstance(v, (tuple, list)) or len(v) > limits.MAX_NDIM:
        raise CheckpointError(f"{what} is {clip(v)}, not a tuple of at most {limits.MAX_NDIM} integers")
    for d in v:
        if type(d) is not int or not 0 <= d <= 1 << 62:
            raise CheckpointError(f"{what} {clip(v)} holds {clip(d)}, not an integer in [0, 2^62]")
    return tuple(v)


def _no_hooks(hooks, what: str) -> None:
    if hooks is not None and not (isinstance(hooks, dict) and not hooks):
        raise CheckpointError(f"{what} carries {clip(hooks)}; hooks and extra state are refused")


def _rebuild_tensor(ctx: LoadContext, storage, offset, size, stride, requires_grad=False, hooks=None,
                    metadata=None) -> torch.Tensor:
    """`torch._utils._rebuild_tensor(_v2)`, checked: the tensor addresses only its storage, once."""
    if not isinstance(storage, Storage):
        raise CheckpointError(f"a tensor is built on {clip(storage)}, not on a storage record")
    size, stride = _dims(size, "a tensor's size"), _dims(stride, "a tensor's stride")
    offset = _int(offset, "a tensor's storage offset", 0, storage.numel)
    if len(size) != len(stride):
        raise CheckpointError(f"a tensor has size {size} but stride {stride}")
    if type(requires_grad) is not bool:
        raise CheckpointError(f"a tensor's requires_grad is {clip(requires_grad)}")
    _no_hooks(hooks, "a tensor")
    _no_hooks(metadata, "a tensor")
    desc = f"of size {list(size)}, stride {list(stride)}, offset {offset} on storage {clip(storage.key, 20)} " \
           f"({storage.numel} elements)"
    numel = math.prod(size)
    if numel:
        extent = 0  # sorted by stride, each dimension must step past everything the smaller ones reach
        for st, sz in sorted((st, sz) for sz, st in zip(size, stride) if sz > 1):
            if st <= extent:
                raise CheckpointError(f"tensor {desc}: its elements overlap (zero or aliasing strides); refused")
            extent += (sz - 1) * st
        if offset + extent >= storage.numel:
            raise CheckpointError(f"tensor {desc}: reaches past the end of its storage")
    ctx.charge_tensor(numel * storage.dtype.itemsize, desc)
    t = torch.empty((0,), dtype=storage.dtype)
    t.set_(storage.data, storage.offset + offset, size, stride)
    return t


def _rebuild_tensor_v1(ctx, storage, offset, size, stride):
    return _rebuild_tensor(ctx, storage, offset, size, stride)


def _rebuild_parameter(ctx, data, requires_grad, hooks, state=None):
    if type(data) is not torch.Tensor:
        raise CheckpointError(f"a parameter wraps {clip(data)}, not a tensor")
    if type(requires_grad) is not bool:
        raise CheckpointError(f"a parameter's requires_grad is {clip(requires_grad)}")
    _no_hooks(hooks, "a parameter")
    if state is not None and not (isinstance(state, dict) and not state) and \
            not (isinstance(state, tuple) and all(s is None or s == {} for s in state)):
        raise CheckpointError(f"a parameter carries extra state {clip(state)}; refused")
    return torch.nn.Parameter(data, requires_grad=requires_grad and data.is_floating_point())


def _parameter(ctx, data=None, requires_grad=True):
    return _rebuild_parameter(ctx, torch.empty(0) if data is None else data, requires_grad, None)


def check_key(k, what: str) -> None:
    """Dict keys and set items: types whose hash a file cannot make collide (str/bytes hashing is keyed;
    small ints hash to themselves)."""
    t = type(k)
    if t is str or t is bytes or t is bool or k is None:
        return
    if t is int and -limits.MAX_INT_KEY <= k <= limits.MAX_INT_KEY:
        return
    raise CheckpointError(f"{what} has a key {clip(k)} of type {t.__name__}; only strings and small integers are "
                          "accepted")


def _items(ctx, arg, what: str) -> list:
    if not isinstance(arg, (list, tuple, set, frozenset)) or len(arg) > limits.MAX_CONTAINER_ITEMS:
        raise CheckpointError(f"{what}() of {clip(arg)}: only a list of at most {limits.MAX_CONTAINER_ITEMS:,} items "
                              "is accepted")
    for k in arg:
        check_key(k, what)
    ctx.charge_data(64 * len(arg) + 256, what)
    return list(arg)


def _set(ctx, *args):
    return set(_items(ctx, args[0], "set")) if args else set()


def _frozenset(ctx, *args):
    return frozenset(_items(ctx, args[0], "frozenset")) if args else frozenset()


def _ordered_dict(ctx, *args):
    if not args:
        return collections.OrderedDict()
    pairs = args[0]
    if not isinstance(pairs, (list, tuple)) or len(pairs) > limits.MAX_CONTAINER_ITEMS or \
            not all(isinstance(p, tuple) and len(p) == 2 for p in pairs):
        raise CheckpointError("OrderedDict() accepts only a list of (key, value) pairs")
    for k, _ in pairs:
        check_key(k, "OrderedDict")
    ctx.charge_data(100 * len(pairs), "OrderedDict")
    return collections.OrderedDict(pairs)


def _bytes(ctx, *args):
    if not args:
        return b""
    if len(args) == 1 and type(args[0]) is bytes:
        return args[0]
    raise CheckpointError(f"bytes() of {clip(args)}: only bytes() and bytes(<bytes>) are accepted")


def _bytearray(ctx, *args):
    if not args:
        return bytearray()
    if len(args) == 1 and type(args[0]) is bytes:
        ctx.charge_data(len(args[0]), "bytearray")
        return bytearray(args[0])
    raise CheckpointError(f"bytearray() of {clip(args)}: only bytearray() and bytearray(<bytes>) are accepted")


def _complex(ctx, real=0.0, imag=0.0):
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise CheckpointError(f"complex() of {clip((real, imag))}: only numbers are accepted")
    return complex(real, imag)


def _codecs_encode(ctx, obj, encoding="utf-8", errors="strict"):
    """`_codecs.encode`, as pickles use it for bytes: latin-1 only (other codecs are slow or odd), bounded."""
    if encoding not in ("latin1", "latin-1") or errors != "strict":
        raise CheckpointError(f"_codecs.encode with codec {clip(encoding, 30)}: only 'latin1' is accepted")
    if type(obj) is not str or len(obj) > limits.MAX_CODEC_CHARS:
        raise CheckpointError(f"_codecs.encode of a {type(obj).__name__} of length "
                              f"{len(obj) if isinstance(obj, (str, bytes)) else '?'}: only strings of at most "
                              f"{limits.MAX_CODEC_CHARS >> 20} Mi characters are accepted")
    ctx.charge_data(len(obj), "_codecs.encode")
    return obj.encode("latin-1")


def _torch_size(ctx, dims=()):
    return torch.Size(_dims(dims, "torch.Size"))


def _torch_device(ctx, kind, index=None):
    if type(kind) is not str or len(kind) > 32 or (index is not None and type(index) is not int):
        raise CheckpointError(f"torch.device of {clip((kind, index))}")
    index = None if index is None else _int(index, "a device index", 0, 1 << 16)
    try:
        return torch.device(kind) if index is None else torch.device(kind, index)
    except RuntimeError as e:  # torch's own parse of the device string ("cuda:abc")
        raise CheckpointError(f"torch.device of {clip((kind, index))}: {first_line(e, 100)}") from None


def _np_checked_dtype(d, what: str) -> np.dtype:
    if not isinstance(d, np.dtype) or d.hasobject or d.kind not in "biufc" or d.fields is not None \
            or d.subdtype is not None or d.itemsize > 32:
        raise CheckpointError(f"{what}: dtype {clip(d)} refused (only plain numeric numpy dtypes are accepted)")
    return d


def _np_dtype(ctx, obj, align=False, copy=False):
    if type(obj) is not str or len(obj) > 8 or not obj.isascii():
        raise CheckpointError(f"numpy.dtype({clip(obj)}) refused")
    return _np_checked_dtype(np.dtype(obj, bool(align), True), "numpy.dtype")  # always a copy: BUILD mutates it


def _np_reconstruct(ctx, subtype, shape, dtype_code):
    if subtype is not np.ndarray:
        raise CheckpointError(f"numpy _reconstruct of {clip(subtype)}: only numpy.ndarray is accepted")
    shape = _dims(shape, "a numpy array's shape")
    if math.prod(shape) > limits.MAX_NUMPY_ELEMENTS or type(dtype_code) not in (bytes, str) or len(dtype_code) > 8:
        raise CheckpointError(f"numpy _reconstruct{clip((shape, dtype_code))} refused")
    ctx.charge_data(math.prod(shape) * 16 + 128, "numpy array")
    return _NP_MULTIARRAY._reconstruct(np.ndarray, shape, dtype_code)


def _np_scalar(ctx, dtype, obj=None):
    dtype = _np_checked_dtype(dtype, "numpy scalar")
    if type(obj) is not bytes or len(obj) != dtype.itemsize:
        raise CheckpointError(f"numpy scalar of {clip(obj)} refused")
    return _NP_MULTIARRAY.scalar(dtype, obj)


def _np_frombuffer(ctx, buf, dtype, shape, order, axis_order=None):
    """numpy's protocol-5 array reconstructor, checked: the buffer holds exactly the array."""
    dtype = _np_checked_dtype(dtype, "numpy array")
    shape = _dims(shape, "a numpy array's shape")
    if axis_order is not None and sorted(_dims(axis_order, "a numpy axis order")) != list(range(len(shape))):
        raise CheckpointError(f"numpy axis order {clip(axis_order)} refused")
    if type(buf) not in (bytes, bytearray) or len(buf) != math.prod(shape) * dtype.itemsize \
            or order not in ("C", "F", "K"):
        raise CheckpointError(f"numpy array of shape {shape} from {clip(buf, 30)} refused")
    ctx.charge_data(len(buf), "numpy array")
    array = np.frombuffer(bytearray(buf), dtype=dtype)
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order="C" if order == "K" else order)


def ndarray_setstate(ctx, arr: np.ndarray, state) -> None:
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise CheckpointError(f"numpy array state {clip(state)} refused")
    shape, dtype, fortran, raw = state[-4:]
    shape = _dims(shape, "a numpy array's shape")
    dtype = _np_checked_dtype(dtype, "numpy array")
    n = math.prod(shape)
    if type(fortran) is not bool or type(raw) is not bytes or n > limits.MAX_NUMPY_ELEMENTS \
            or len(raw) != n * dtype.itemsize:
        raise CheckpointError(f"numpy array state of shape {shape} with {clip(raw, 30)} refused")
    ctx.charge_data(len(raw), "numpy array")
    arr.__setstate__(state)


def dtype_setstate(ctx, d: np.dtype, state) -> None:
    # plain numeric dtypes pickle their state as (3, '<', None, None, None, -1, -1, 0); flags and fields
    # from a file could make numpy read raw bytes as object pointers: nothing else is accepted
    if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4) \
            or state[1] not in ("<", ">", "|", "=") or state[2:8] != (None, None, None, -1, -1, 0) \
            or (len(state) == 9 and state[8] is not None):
        raise CheckpointError(f"numpy dtype state {clip(state)} refused")
    d.__setstate__(state)


SAFE: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): SafeCall("collections.OrderedDict", _ordered_dict),
    ("_codecs", "encode"): SafeCall("_codecs.encode", _codecs_encode),
    ("torch._utils", "_rebuild_tensor"): SafeCall("torch._utils._rebuild_tensor", _rebuild_tensor_v1),
    ("torch._utils", "_rebuild_tensor_v2"): SafeCall("torch._utils._rebuild_tensor_v2", _rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): SafeCall("torch._utils._rebuild_parameter", _rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): SafeCall("torch._utils._rebuild_parameter_with_state",
                                                                _rebuild_parameter),
    ("torch", "Size"): SafeCall("torch.Size", _torch_size),
    ("torch", "device"): SafeCall("torch.device", _torch_device),
    ("torch.nn.parameter", "Parameter"): SafeCall("torch.nn.Parameter", _parameter),
    ("numpy", "ndarray"): np.ndarray,  # only as _reconstruct's argument: calling it is refused
    ("numpy", "dtype"): SafeCall("numpy.dtype", _np_dtype),
}
for _b, _fn in (("set", _set), ("frozenset", _frozenset), ("bytes", _bytes), ("bytearray", _bytearray),
                ("complex", _complex)):
    SAFE[("builtins", _b)] = SAFE[("__builtin__", _b)] = SafeCall(_b, _fn)
for _np in ("numpy.core.multiarray", "numpy._core.multiarray"):
    SAFE[(_np, "_reconstruct")] = SafeCall("numpy _reconstruct", _np_reconstruct)
    SAFE[(_np, "scalar")] = SafeCall("numpy scalar", _np_scalar)
for _np in ("numpy.core.numeric", "numpy._core.numeric"):
    SAFE[(_np, "_frombuffer")] = SafeCall("numpy _frombuffer", _np_frombuffer)
for _dt in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.int32, torch.int16,
            torch.int8, torch.uint8, torch.bool):
    SAFE[("torch", str(_dt).split(".")[-1])] = _dt
for _name, _dt in STORAGE_DTYPES.items():
    SAFE[("torch", _name)] = StorageType(_name, _dt)

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
_TORCH_NN_MODULES = "torch.nn.modules."


def _is_torch_nn_module(module: str, name: str) -> bool:
    """A class of an already imported `torch.nn.modules.*` module (nothing is imported here)."""
    if not module.startswith(_TORCH_NN_MODULES) or not name.isidentifier():
        return False
    obj = getattr(sys.modules.get(module), name, None)
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def resolve_global(module: str, name: str):
    """The object a pickle GLOBAL may resolve to, or UnsafePickleError."""
    if type(module) is not str or type(name) is not str:
        raise UnsafePickleError(f"refusing global {clip(module)}.{clip(name)}: not a name")
    if (module, name) in SAFE:
        return SAFE[(module, name)]
    if name in UPSTREAM_CLASSES.get(module, ()) or _is_torch_nn_module(module, name):
        return stand_in(module, name)
    raise UnsafePickleError(f"refusing global '{clip(module, 100)}.{clip(name, 100)}': not in the allowlist")
