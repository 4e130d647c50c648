"""Allowlist-only unpickling of PyTorch checkpoint files (a checkpoint is untrusted input).

The pickle virtual machine is Python's own pure-Python `pickle._Unpickler`, with every opcode that
calls, builds or mutates an object replaced by a checked version, and every opcode counted:

- a GLOBAL resolves only to the names in the allowlist below (anything else raises `UnsafePickleError`
  before it is called: nothing of the payload runs). Most resolve to *checked constructors* that take
  the arguments real checkpoints use and refuse anything else (`bytearray(12e9)`, `_codecs.encode(s,
  'punycode')`, `set(<10^8 items>)`); torch/numpy value names (dtypes, storage types) resolve to
  inert values; the upstream YOLOR classes and torch.nn module classes resolve to inert `StandIn`s that
  only record the state they are given (no upstream or nn code runs, nothing is imported);
- REDUCE calls only checked constructors and stand-in classes; NEWOBJ builds only stand-ins; INST, OBJ
  and EXT are refused; BUILD sets state only on stand-ins, OrderedDicts (attributes), numpy arrays and
  dtypes (validated); SETITEM(S)/APPEND(S)/ADDITEMS only on real dicts, lists and sets, with keys whose
  hash a file cannot make collide;
- tensors are rebuilt here from storages the archive reader (`archive.py`) hands to `persistent_load`:
  size, stride and offset must address only the storage, without overlapping themselves, and all
  tensors together are budgeted against the storage bytes read;
- opcodes, and the bytes made by constructors, are budgeted (`limits.py`): a small file cannot make
  the loader allocate gigabytes or run for minutes.

Errors raised here are `CheckpointError`s without the file name; `archive.read_checkpoint` adds it.
"""
from __future__ import annotations

import collections
import math
import pickle
import reprlib
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, UnsafePickleError
from . import limits

_NP_MULTIARRAY = (np._core if hasattr(np, "_core") else np.core).multiarray  # type: ignore[attr-defined]


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 60, 80, 40
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxarray = 6


def clip(value, limit: int = 80) -> str:
    """A value taken from a file, shown short and on one line (strings as they are, others as a bounded
    `repr`: a hostile object must not make an error message huge or slow)."""
    try:
        text = value[: limit + 1] if isinstance(value, str) else _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile object's repr must not escape
        text = f"<{type(value).__name__}>"
    text = "".join(c if c.isprintable() else "?" for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- per-file state ------------------------------------------------------------------------------------

class LoadContext:
    """Budgets shared by every pickle of one file, and the archive's storage source."""

    def __init__(self, persistent_load: Callable[[LoadContext, object], object]):
        self.persistent_load = persistent_load
        self.ops = 0
        self.data_bytes = 0
        self.storage_bytes = 0
        self.tensor_bytes = 0

    def tick(self) -> None:
        self.ops += 1
        if self.ops > limits.MAX_PICKLE_OPS:
            raise CheckpointError(f"the pickle runs more than {limits.MAX_PICKLE_OPS:,} opcodes (no real "
                                  "checkpoint does); refused")

    def charge_data(self, nbytes: int, what: str) -> None:
        self.data_bytes += nbytes
        if self.data_bytes > limits.MAX_DATA_BYTES:
            raise CheckpointError(f"{what}: the pickle builds more than {limits.MAX_DATA_BYTES >> 20} MiB of "
                                  "plain data (bytes, sets, arrays); refused")

    def charge_storage(self, nbytes: int) -> None:
        self.storage_bytes += nbytes
        if self.storage_bytes > limits.MAX_STORAGE_BYTES:
            raise CheckpointError(f"tensor storages exceed {limits.MAX_STORAGE_BYTES >> 30} GiB in all; refused")

    def charge_tensor(self, nbytes: int, desc: str) -> None:
        self.tensor_bytes += nbytes
        budget = limits.TENSOR_ALIAS_FACTOR * self.storage_bytes + limits.TENSOR_SLACK_BYTES
        if self.tensor_bytes > budget:
            raise CheckpointError(f"tensor {desc}: the tensors built so far ({self.tensor_bytes:,} bytes) would "
                                  f"exceed {limits.TENSOR_ALIAS_FACTOR}x the storage bytes in the file "
                                  f"({self.storage_bytes:,}); refused")


# --- stand-ins -----------------------------------------------------------------------------------------

class StandIn:
    """Inert stand-in for a pickled module: keeps the pickled attributes, runs no code."""

    qualname = ""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        parts = [p for p in state if p is not None] if isinstance(state, tuple) and len(state) == 2 else [state]
        for part in parts:  # (dict, slots) or dict
            if not isinstance(part, dict):
                raise CheckpointError(f"pickled {type(self).qualname} has a state of type {type(part).__name__}, "
                                      "not a dict of attributes")
            for k in part:
                if type(k) is not str or k.startswith("__"):
                    raise CheckpointError(f"pickled {type(self).qualname} has an invalid attribute name {clip(k)}")
        for part in parts:
            self.__dict__.update(part)

    def __repr__(self):
        return f"<StandIn {type(self).qualname}>"


_STANDINS: dict[str, type] = {}


def _stand_in(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STANDINS:
        _STANDINS[key] = type(name, (StandIn,), {"qualname": key})
    return _STANDINS[key]


def is_stand_in_class(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, StandIn)


# --- values a GLOBAL may name ----------------------------------------------------------------------------

class StorageType:
    """What `torch.FloatStorage` & co. resolve to: a dtype token for persistent ids (not callable)."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"<storage type {self.name}>"


_STORAGE_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
                   "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
                   "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
                   "BoolStorage": torch.bool}


class Storage:
    """One storage record's bytes (`data`, a CPU UntypedStorage) seen as `numel` elements of `dtype`
    starting `offset` elements in."""

    def __init__(self, key: str, dtype: torch.dtype, data: torch.UntypedStorage, numel: int, offset: int = 0):
        self.key, self.dtype, self.data, self.numel, self.offset = key, dtype, data, numel, offset

    def __repr__(self):
        return f"<storage {self.key} {self.dtype} x{self.numel}>"


class SafeCall:
    """A checked constructor a GLOBAL resolves to; REDUCE calls `fn(ctx, *args)`."""

    def __init__(self, name: str, fn: Callable[..., object]):
        self.name, self.fn = name, fn

    def __repr__(self):
        return f"<allowlisted {self.name}>"


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


def _check_key(k, what: str) -> None:
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
        _check_key(k, what)
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
        _check_key(k, "OrderedDict")
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
    return torch.device(kind) if index is None else torch.device(kind, _int(index, "a device index", 0, 1 << 16))


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


def _ndarray_setstate(ctx, arr: np.ndarray, state) -> None:
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


def _dtype_setstate(ctx, d: np.dtype, state) -> None:
    # plain numeric dtypes pickle their state as (3, '<', None, None, None, -1, -1, 0); flags and fields
    # from a file could make numpy read raw bytes as object pointers: nothing else is accepted
    if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4) \
            or state[1] not in ("<", ">", "|", "=") or state[2:8] != (None, None, None, -1, -1, 0) \
            or (len(state) == 9 and state[8] is not None):
        raise CheckpointError(f"numpy dtype state {clip(state)} refused")
    d.__setstate__(state)


_SAFE: dict[tuple[str, str], object] = {
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
    _SAFE[("builtins", _b)] = _SAFE[("__builtin__", _b)] = SafeCall(_b, _fn)
for _np in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _SAFE[(_np, "_reconstruct")] = SafeCall("numpy _reconstruct", _np_reconstruct)
    _SAFE[(_np, "scalar")] = SafeCall("numpy scalar", _np_scalar)
for _np in ("numpy.core.numeric", "numpy._core.numeric"):
    _SAFE[(_np, "_frombuffer")] = SafeCall("numpy _frombuffer", _np_frombuffer)
for _dt in (torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.int32, torch.int16,
            torch.int8, torch.uint8, torch.bool):
    _SAFE[("torch", str(_dt).split(".")[-1])] = _dt
for _name, _dt in _STORAGE_DTYPES.items():
    _SAFE[("torch", _name)] = StorageType(_name, _dt)

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
    if (module, name) in _SAFE:
        return _SAFE[(module, name)]
    if name in UPSTREAM_CLASSES.get(module, ()) or _is_torch_nn_module(module, name):
        return _stand_in(module, name)
    raise UnsafePickleError(f"refusing global '{clip(module, 100)}.{clip(name, 100)}': not in the allowlist")


# --- the virtual machine ---------------------------------------------------------------------------------

_REFUSED_OPCODES = {pickle.INST: "INST", pickle.OBJ: "OBJ", pickle.EXT1: "EXT1", pickle.EXT2: "EXT2",
                    pickle.EXT4: "EXT4", pickle.NEXT_BUFFER: "NEXT_BUFFER",
                    pickle.READONLY_BUFFER: "READONLY_BUFFER"}


class Unpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """One pickle of a checkpoint, run under `ctx`'s budgets (see the module docstring)."""

    dispatch: dict = {}

    def __init__(self, file, ctx: LoadContext):
        super().__init__(file, fix_imports=False, encoding="utf-8", errors="strict")
        self.ctx = ctx

    def find_class(self, module, name):
        return resolve_global(module, name)

    def persistent_load(self, pid):
        return self.ctx.persistent_load(self.ctx, pid)

    # -- calls and state --
    def load_reduce(self):
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(args) is not tuple:
            raise CheckpointError(f"REDUCE with arguments {clip(args)}, not a tuple")
        if isinstance(func, SafeCall):
            try:
                stack[-1] = func.fn(self.ctx, *args)
            except TypeError as e:
                raise CheckpointError(f"{func.name} called with unexpected arguments {clip(args)}: {e}") from None
        elif is_stand_in_class(func):
            stack[-1] = func.__new__(func)
        else:
            raise UnsafePickleError(f"refusing to call {clip(func)}: not an allowlisted constructor")

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack[-1]
        if not is_stand_in_class(cls) or type(args) is not tuple:
            raise UnsafePickleError(f"refusing to build {clip(cls)}: only pickled modules are built by NEWOBJ")
        self.stack[-1] = cls.__new__(cls)

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        if type(kwargs) is not dict:
            raise CheckpointError("NEWOBJ_EX without keyword arguments")
        self.load_newobj()

    def load_build(self):
        stack = self.stack
        state = stack.pop()
        inst = stack[-1]
        if isinstance(inst, StandIn):
            inst.__setstate__(state)
        elif type(inst) is collections.OrderedDict:  # a state_dict's `_metadata`
            if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
                state = state[0]
            if not isinstance(state, dict) or not all(type(k) is str and not k.startswith("__") for k in state):
                raise CheckpointError(f"OrderedDict state {clip(state)} refused")
            inst.__dict__.update(state)
        elif type(inst) is np.ndarray:
            _ndarray_setstate(self.ctx, inst, state)
        elif type(inst) is np.dtype or isinstance(inst, np.dtype):
            _dtype_setstate(self.ctx, inst, state)
        else:
            raise UnsafePickleError(f"refusing to set the state of {clip(inst)} (a {type(inst).__name__})")

    # -- containers: real dicts, lists and sets only, with keys that hash safely --
    def _target(self, types: tuple, what: str):
        obj = self.stack[-1] if self.stack else None
        if type(obj) not in types:
            raise CheckpointError(f"{what} on a {type(obj).__name__}")
        return obj

    def load_setitem(self):
        value, key = self.stack.pop(), self.stack.pop()
        _check_key(key, "a dict")
        self._target((dict, collections.OrderedDict), "SETITEM")[key] = value

    def load_setitems(self):
        items = self.pop_mark()
        d = self._target((dict, collections.OrderedDict), "SETITEMS")
        if len(items) % 2:
            raise CheckpointError("SETITEMS with an odd number of items")
        for i in range(0, len(items), 2):
            _check_key(items[i], "a dict")
            d[items[i]] = items[i + 1]

    def load_dict(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise CheckpointError("DICT with an odd number of items")
        for k in items[::2]:
            _check_key(k, "a dict")
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_append(self):
        value = self.stack.pop()
        self._target((list,), "APPEND").append(value)

    def load_appends(self):
        items = self.pop_mark()
        self._target((list,), "APPENDS").extend(items)

    def load_additems(self):
        items = self.pop_mark()
        for k in items:
            _check_key(k, "a set")
        self._target((set,), "ADDITEMS").update(items)

    def load_frozenset(self):
        items = self.pop_mark()
        for k in items:
            _check_key(k, "a frozenset")
        self.append(frozenset(items))

    def load_put(self):  # text PUT: any integer; kept to the range of LONG_BINPUT (memo keys must not collide)
        i = int(self.readline()[:-1])
        if not 0 <= i < 1 << 32:
            raise CheckpointError(f"PUT to memo index {clip(i)}")
        self.memo[i] = self.stack[-1]

    def load_bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        if n > limits.MAX_PICKLE_BYTES:
            raise CheckpointError(f"BYTEARRAY8 of {n:,} bytes refused")
        data = self.read(n)
        if len(data) != n:
            raise pickle.UnpicklingError("pickle exhausted inside BYTEARRAY8")
        self.ctx.charge_data(n, "bytearray")
        self.append(bytearray(data))

    def load_refused(self, code: bytes):
        raise UnsafePickleError(f"refusing pickle opcode {_REFUSED_OPCODES[code]}")


def _build_dispatch() -> dict:
    base = pickle._Unpickler.dispatch  # type: ignore[attr-defined]
    ours = {
        pickle.REDUCE: Unpickler.load_reduce, pickle.NEWOBJ: Unpickler.load_newobj,
        pickle.NEWOBJ_EX: Unpickler.load_newobj_ex, pickle.BUILD: Unpickler.load_build,
        pickle.SETITEM: Unpickler.load_setitem, pickle.SETITEMS: Unpickler.load_setitems,
        pickle.DICT: Unpickler.load_dict, pickle.APPEND: Unpickler.load_append,
        pickle.APPENDS: Unpickler.load_appends, pickle.ADDITEMS: Unpickler.load_additems,
        pickle.FROZENSET: Unpickler.load_frozenset, pickle.BYTEARRAY8: Unpickler.load_bytearray8,
        pickle.PUT: Unpickler.load_put,
    }

    def counted(fn):
        def op(self):
            self.ctx.tick()
            fn(self)
        return op

    def refused(code):
        return lambda self: self.load_refused(code)

    def invalid(code):
        def op(self):
            raise pickle.UnpicklingError(f"invalid pickle opcode 0x{code:02x}")
        return op

    table = {}
    for code in range(256):
        key = bytes([code])
        if key in _REFUSED_OPCODES:
            table[code] = refused(key)
        elif key in ours:
            table[code] = counted(ours[key])
        elif code in base:
            table[code] = counted(base[code])
        else:
            table[code] = invalid(code)
    return table


Unpickler.dispatch = _build_dispatch()


def safe_torch_load(path: str | Path):
    """Read a torch checkpoint (zip or legacy format) with the allowlist unpickler, without torch.load.
    Errors are `CheckpointError`s naming the file."""
    from .archive import read_checkpoint

    return read_checkpoint(path)
