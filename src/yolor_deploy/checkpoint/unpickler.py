"""Allowlist-only unpickling of PyTorch checkpoint files (a checkpoint is untrusted input).

The pickle virtual machine is Python's own pure-Python `pickle._Unpickler`, with every opcode that
calls, builds or mutates an object replaced by a checked version, and every opcode counted:

- a GLOBAL resolves only to the names in the allowlist (`allowlist.py`; anything else raises `UnsafePickleError`
  before it is called: nothing of the payload runs). Most resolve to *checked constructors* that take
  the arguments real checkpoints use and refuse anything else (`bytearray(12e9)`, `_codecs.encode(s,
  'punycode')`, `set(<10^8 items>)`); torch/numpy value names (dtypes, storage types) resolve to
  inert values; the upstream YOLOR classes and torch.nn module classes resolve to inert `StandIn`s that
  only record the state they are given (no upstream or nn code runs, nothing is imported);
- REDUCE calls only checked constructors and stand-in classes; NEWOBJ builds only stand-ins; INST, OBJ
  and EXT are refused; BUILD sets state only on stand-ins, OrderedDicts (attributes), numpy arrays and
  dtypes (validated); SETITEM(S)/APPEND(S)/ADDITEMS only on real dicts, lists and sets, with keys whose
  hash a file cannot make collide;
- tensors are rebuilt (`allowlist.py`) from storages the archive reader (`archive.py`) hands to `persistent_load`:
  size, stride and offset must address only the storage, without overlapping themselves, and all
  tensors together are budgeted against the storage bytes read;
- opcodes, and the bytes made by constructors, are budgeted (`limits.py`): a small file cannot make
  the loader allocate gigabytes or run for minutes.

This module is the mechanism; what may be named and built is the policy in `allowlist.py`, the budgets
in `budget.py` and `limits.py`.

Errors raised here are `CheckpointError`s without the file name; `archive.read_checkpoint` adds it.
"""
from __future__ import annotations

import collections
import inspect
import pickle
import struct

import numpy as np

from ..errors import CheckpointError, UnsafePickleError
from . import limits
from .allowlist import check_key, dtype_setstate, ndarray_setstate, resolve_global
from .budget import LoadContext
from .inert import SafeCall, StandIn, clip, is_stand_in_class

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

    def _need(self, n: int) -> None:
        """Stack underflow in our opcodes is the file's fault (the stdlib's own: see `_build_dispatch`)."""
        if len(self.stack) < n:
            raise pickle.UnpicklingError(f"unpickling stack underflow ({len(self.stack)} of {n} items)")

    # -- calls and state --
    def load_reduce(self):
        self._need(2)
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        if type(args) is not tuple:
            raise CheckpointError(f"REDUCE with arguments {clip(args)}, not a tuple")
        if isinstance(func, SafeCall):
            try:  # the arity is checked apart: a TypeError inside a constructor would be a bug of ours
                inspect.signature(func.fn).bind(self.ctx, *args)
            except TypeError as e:
                raise CheckpointError(f"{func.name} called with unexpected arguments {clip(args)}: {e}") from None
            stack[-1] = func.fn(self.ctx, *args)
        elif is_stand_in_class(func):
            stack[-1] = func.__new__(func)
        else:
            raise UnsafePickleError(f"refusing to call {clip(func)}: not an allowlisted constructor")

    def load_newobj(self):
        self._need(2)
        args = self.stack.pop()
        cls = self.stack[-1]
        if not is_stand_in_class(cls) or type(args) is not tuple:
            raise UnsafePickleError(f"refusing to build {clip(cls)}: only pickled modules are built by NEWOBJ")
        self.stack[-1] = cls.__new__(cls)

    def load_newobj_ex(self):
        self._need(3)
        kwargs = self.stack.pop()
        if type(kwargs) is not dict:
            raise CheckpointError("NEWOBJ_EX without keyword arguments")
        self.load_newobj()

    def load_build(self):
        self._need(2)
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
            ndarray_setstate(self.ctx, inst, state)
        elif type(inst) is np.dtype or isinstance(inst, np.dtype):
            dtype_setstate(self.ctx, inst, state)
        else:
            raise UnsafePickleError(f"refusing to set the state of {clip(inst)} (a {type(inst).__name__})")

    # -- containers: real dicts, lists and sets only, with keys that hash safely --
    def _target(self, types: tuple, what: str):
        obj = self.stack[-1] if self.stack else None
        if type(obj) not in types:
            raise CheckpointError(f"{what} on a {type(obj).__name__}")
        return obj

    def load_setitem(self):
        self._need(3)
        value, key = self.stack.pop(), self.stack.pop()
        check_key(key, "a dict")
        self._target((dict, collections.OrderedDict), "SETITEM")[key] = value

    def load_setitems(self):
        items = self.pop_mark()
        d = self._target((dict, collections.OrderedDict), "SETITEMS")
        if len(items) % 2:
            raise CheckpointError("SETITEMS with an odd number of items")
        for i in range(0, len(items), 2):
            check_key(items[i], "a dict")
            d[items[i]] = items[i + 1]

    def load_dict(self):
        items = self.pop_mark()
        if len(items) % 2:
            raise CheckpointError("DICT with an odd number of items")
        for k in items[::2]:
            check_key(k, "a dict")
        self.append({items[i]: items[i + 1] for i in range(0, len(items), 2)})

    def load_append(self):
        self._need(2)
        value = self.stack.pop()
        self._target((list,), "APPEND").append(value)

    def load_appends(self):
        items = self.pop_mark()
        self._target((list,), "APPENDS").extend(items)

    def load_additems(self):
        items = self.pop_mark()
        for k in items:
            check_key(k, "a set")
        self._target((set,), "ADDITEMS").update(items)

    def load_frozenset(self):
        items = self.pop_mark()
        for k in items:
            check_key(k, "a frozenset")
        self.append(frozenset(items))

    def load_put(self):  # text PUT: any integer; kept to the range of LONG_BINPUT (memo keys must not collide)
        self._need(1)
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


def _raised_in_stdlib_pickle(e: BaseException) -> bool:
    """Whether `e` was raised by the code of Python's `pickle` module itself (not by ours it called)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename == pickle.__file__


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
            try:
                fn(self)
            except IndexError as e:
                if _raised_in_stdlib_pickle(e):  # its handlers index an empty stack/metastack or a short read
                    raise pickle.UnpicklingError("unpickling stack underflow or truncated opcode") from None
                raise  # ours: a bug, not the file's fault
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
