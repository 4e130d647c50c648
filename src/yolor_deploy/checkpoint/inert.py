"""The inert values an allowlisted pickle is made of: stand-ins for pickled modules (they receive state,
run no code), storage-type tokens, storages handed out by the archive reader, and `SafeCall`, the
wrapper of a checked constructor; `clip` shows a value taken from a file short and on one line."""
from __future__ import annotations

import reprlib
from collections.abc import Callable

import torch

from ..errors import CheckpointError

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


def stand_in(module: str, name: str) -> type:
    key = f"{module}.{name}"
    if key not in _STANDINS:
        _STANDINS[key] = type(name, (StandIn,), {"qualname": key})
    return _STANDINS[key]


def is_stand_in_class(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, StandIn)


class StorageType:
    """What `torch.FloatStorage` & co. resolve to: a dtype token for persistent ids (not callable)."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype

    def __repr__(self):
        return f"<storage type {self.name}>"


STORAGE_DTYPES = {"FloatStorage": torch.float32, "HalfStorage": torch.float16, "DoubleStorage": torch.float64,
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
