"""Reading torch checkpoint files without `torch.load` (a checkpoint is untrusted input).

`torch.load` hands some files to code that never consults a pickle allowlist: a TorchScript archive
(`torch.jit.save`, even renamed `.pt`) goes to `torch.jit.load`, whose `__setstate__` methods run; the
legacy format allocates storages of any declared size and may try a tar reader. So both formats torch
writes are read here, with `zipfile`/plain reads and `unpickler.Unpickler`:

- zip (torch >= 1.6): one top-level folder holding `data.pkl`, `data/<n>` storage records and a few
  small records (`version`, `byteorder`, `.data/serialization_id`, `.format_version`,
  `.storage_alignment`); any other record (TorchScript's `constants.pkl`, `code/`, `extra/`, ...)
  refuses the file, naming it. Records must not overlap, may be stored or deflated, and each is capped
  (declared size, expansion ratio); storages are read only when the pickle references them, and
  `numel * element_size` must fit the record;
- legacy (torch < 1.6, a stream of pickles starting with 0x80): magic number, protocol, system info,
  the object, the storage keys, then each storage's raw bytes; the declared storages must fit in the
  rest of the file before anything is allocated.
"""
from __future__ import annotations

import io
import pickle
import re
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, UnsafePickleError, first_line, internal_error
from ..fs import check_regular, open_regular
from . import limits
from .budget import LoadContext
from .inert import Storage, StorageType, clip, is_stand_in_class
from .unpickler import Unpickler

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_SMALL_RECORDS = frozenset({"version", ".data/version", "byteorder", ".data/serialization_id", ".format_version",
                            ".storage_alignment"})
_STORAGE_RECORD = re.compile(r"data/([0-9]{1,12})")
_CHUNK = 16 << 20
# What a corrupt or hostile file makes the readers we build on raise (documented failure kinds, not bugs):
# the pickle machine (UnpicklingError, EOFError on a truncated stream, ValueError for a bad protocol or text
# number, UnicodeDecodeError), struct (truncated fields), zipfile/zlib (directory, compressed data), reads.
# Anything else (AttributeError, TypeError, KeyError, IndexError, ...) is a bug here: an `InternalError`.
CORRUPT_FILE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, struct.error, zipfile.BadZipFile,
                       zipfile.LargeZipFile, zlib.error, OSError, OverflowError)


def one_line(message: str) -> str:
    text = " ".join(message.split("\n"))
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limits.MAX_MESSAGE_CHARS else text[: limits.MAX_MESSAGE_CHARS - 3] + "..."


def read_checkpoint(path: str | Path):
    """The object pickled in a torch checkpoint file; every failure is a one-line `CheckpointError`
    naming the file (`UnsafePickleError` when the pickle names or calls something not allowlisted), or, for
    an exception none of our checks or `CORRUPT_FILE_ERRORS` expects (a bug of ours), an `InternalError`."""
    path = Path(path)
    try:
        check_regular(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except OSError as e:  # a FIFO, device, socket or folder: refused before it is opened
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        with open_regular(path) as f:
            size = f.seek(0, 2)
            f.seek(0)
            if size > limits.MAX_FILE_BYTES:
                raise CheckpointError(f"{size:,} bytes is larger than any YOLOR checkpoint "
                                      f"({limits.MAX_FILE_BYTES >> 30} GiB limit)")
            head = f.read(4)
            f.seek(0)
            clamped = _ClampedFile(f, size)
            if head == b"PK\x03\x04":
                return _read_zip(clamped, size)
            if head[:1] == b"\x80":
                return _read_legacy(clamped, size)
            raise CheckpointError("not a PyTorch checkpoint (neither a torch zip archive nor a pickle)")
    except UnsafePickleError as e:
        raise UnsafePickleError(one_line(f"{path}: {e}; the file may be malicious, nothing of it was run")) from None
    except CheckpointError as e:
        raise CheckpointError(one_line(f"{path}: {e}")) from None
    except MemoryError:
        raise CheckpointError(f"{path}: out of memory while reading it") from None
    except CORRUPT_FILE_ERRORS as e:
        raise CheckpointError(one_line(f"{path}: unreadable checkpoint (truncated or corrupt?): "
                                       f"{type(e).__name__}: {first_line(e)}")) from None
    except Exception as e:  # noqa: BLE001 - nothing else is expected: a bug of ours, told apart, chained
        raise internal_error(one_line(str(path)), e, "reading the checkpoint") from e


class _ClampedFile:
    """A binary file whose `read(n)` never asks for more than what is left (a size read from the file
    must not size a buffer)."""

    def __init__(self, f, size: int):
        self._f, self._size = f, size

    def read(self, n: int | None = -1) -> bytes:
        left = max(0, self._size - self._f.tell())
        return self._f.read(left if n is None or n < 0 or n > left else n)

    def readline(self, limit: int = -1) -> bytes:
        return self._f.readline(limit)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True


def _fill(buf: torch.Tensor, read, what: str) -> None:
    """Fill a uint8 tensor from `read(n)`, in chunks."""
    view, n, pos = buf.numpy(), buf.numel(), 0
    while pos < n:
        chunk = read(min(_CHUNK, n - pos))
        if not chunk:
            raise CheckpointError(f"{what} is truncated ({pos:,} of {n:,} bytes)")
        view[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        pos += len(chunk)


# --- zip -------------------------------------------------------------------------------------------------

def _is_torchscript(rest: str) -> bool:
    return rest in ("constants.pkl", "bytecode.pkl", "mobile_info.json") or rest.endswith(".debug_pkl") \
        or rest.startswith(("code/", "extra/", "constants/")) \
        or (rest.startswith(".data/") and rest not in _SMALL_RECORDS)


def _check_record(info: zipfile.ZipInfo, rest: str, cap: int) -> None:
    if info.flag_bits & 0x1:
        raise CheckpointError(f"record {clip(rest)} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(f"record {clip(rest)} uses zip compression method {info.compress_type} (torch writes "
                              "stored records)")
    if info.file_size > cap:
        raise CheckpointError(f"record {clip(rest)} is {info.file_size:,} bytes, over the {cap:,}-byte limit for it")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise CheckpointError(f"record {clip(rest)}: stored size {info.compress_size:,} != size {info.file_size:,}")
    if info.compress_type == zipfile.ZIP_DEFLATED and \
            info.file_size > max(limits.MAX_DEFLATE_RATIO * info.compress_size, limits.DEFLATE_RATIO_FLOOR):
        raise CheckpointError(f"record {clip(rest)} expands {info.compress_size:,} -> {info.file_size:,} bytes, over "
                              f"{limits.MAX_DEFLATE_RATIO}x (a zip bomb?)")


def _read_record(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with zf.open(info) as r:
        data = r.read(info.file_size)
    if len(data) != info.file_size:
        raise CheckpointError(f"record {clip(info.filename)} is truncated")
    return data


def _open_zip(f: _ClampedFile, size: int) -> zipfile.ZipFile:
    end_record = getattr(zipfile, "_EndRecData", None)  # checked before zipfile reads the directory
    if end_record is not None:
        rec = end_record(f)
        if rec is None:
            raise CheckpointError("unreadable checkpoint (truncated or corrupt?): no zip end-of-directory record")
        entries, cd_size, cd_offset = rec[4], rec[5], rec[6]
        if entries > limits.MAX_ZIP_ENTRIES:
            raise CheckpointError(f"the zip directory lists {entries:,} records (limit {limits.MAX_ZIP_ENTRIES:,})")
        if cd_size > size or cd_offset > size:
            raise CheckpointError("unreadable checkpoint (truncated or corrupt?): zip directory out of the file")
    return zipfile.ZipFile(f)


def _read_zip(f: _ClampedFile, size: int):
    with _open_zip(f, size) as zf:
        return _read_open_zip(zf, size)


def _read_open_zip(zf: zipfile.ZipFile, size: int):
    infos = zf.infolist()
    if len(infos) > limits.MAX_ZIP_ENTRIES:
        raise CheckpointError(f"the zip holds {len(infos):,} records (limit {limits.MAX_ZIP_ENTRIES:,})")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise CheckpointError("the zip holds two records of the same name")
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or not all("/" in n for n in names):
        raise CheckpointError(f"not a torch checkpoint archive: records must sit in one top-level folder, found "
                              f"{clip(sorted(tops)[:4])}")
    top = tops.pop()
    rests = {i.filename[len(top) + 1:]: i for i in infos}
    script = sorted(r for r in rests if _is_torchscript(r))
    if script:
        raise CheckpointError(f"a TorchScript archive (torch.jit.save; record {clip(script[0])}): refused, loading "
                              "one runs the code it carries; save a plain checkpoint (torch.save of a state_dict)")
    storages: dict[str, zipfile.ZipInfo] = {}
    for rest, info in rests.items():
        m = _STORAGE_RECORD.fullmatch(rest)
        if m:
            storages[m.group(1)] = info
            _check_record(info, rest, limits.MAX_STORAGE_BYTES)
        elif rest == "data.pkl":
            _check_record(info, rest, limits.MAX_PICKLE_BYTES)
        elif rest in _SMALL_RECORDS:
            _check_record(info, rest, limits.MAX_SMALL_RECORD_BYTES)
        else:
            raise CheckpointError(f"unexpected record '{clip(info.filename)}' in a torch checkpoint archive; refused")
    if "data.pkl" not in rests:
        raise CheckpointError(f"no {top}/data.pkl record: not a torch checkpoint archive")
    if sum(i.file_size for i in storages.values()) > limits.MAX_STORAGE_BYTES:
        raise CheckpointError(f"tensor storages exceed {limits.MAX_STORAGE_BYTES >> 30} GiB in all; refused")
    # records must not overlap (one compressed span read under many names is a zip bomb)
    spans = sorted((i.header_offset, i.header_offset + 30 + i.compress_size, i.filename) for i in infos)
    end_of_data = getattr(zf, "start_dir", size)
    for (_, end, name), (start, _, _) in zip(spans, spans[1:] + [(end_of_data, 0, "")]):
        if end > start:
            raise CheckpointError(f"record {clip(name)} overlaps the next one; refused")
    if "byteorder" in rests:
        order = _read_record(zf, rests["byteorder"]).strip()
        if order != b"little":
            raise CheckpointError(f"byte order {clip(order)}: only little-endian checkpoints are supported")
    for small in ("version", ".format_version", ".storage_alignment"):
        if small in rests and not re.fullmatch(rb"\s*[0-9]{1,6}\s*", _read_record(zf, rests[small])):
            raise CheckpointError(f"record {small} is not a number")

    loaded: dict[str, torch.UntypedStorage] = {}

    def persistent_load(ctx: LoadContext, pid):
        if type(pid) is not tuple or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
            raise CheckpointError(f"unknown persistent id {clip(pid)} (expected ('storage', type, key, location, "
                                  "numel))")
        _, stype, key, location, numel = pid
        if not isinstance(stype, StorageType):
            raise CheckpointError(f"storage of type {clip(stype)}")
        if type(key) is not str or key not in storages:
            raise CheckpointError(f"the pickle references storage {clip(key)}, which has no data/ record")
        if type(location) not in (str, bytes) or len(location) > 64:
            raise CheckpointError(f"storage {key} has location {clip(location)}")
        if type(numel) is not int or numel < 0:
            raise CheckpointError(f"storage {key} has {clip(numel)} elements")
        info = storages[key]
        nbytes = numel * stype.dtype.itemsize
        if nbytes > info.file_size:
            raise CheckpointError(f"storage {key}: {numel:,} x {stype.name} = {nbytes:,} bytes, but its record "
                                  f"holds {info.file_size:,}")
        if key not in loaded:
            ctx.charge_storage(info.file_size)
            buf = torch.empty(info.file_size, dtype=torch.uint8)
            with zf.open(info) as r:
                _fill(buf, r.read, f"record data/{key}")
            loaded[key] = buf.untyped_storage()
        return Storage(key, stype.dtype, loaded[key], numel)

    ctx = LoadContext(persistent_load)
    data = _read_record(zf, rests["data.pkl"])
    return Unpickler(io.BytesIO(data), ctx).load()


# --- legacy ------------------------------------------------------------------------------------------------

def _read_legacy(f: _ClampedFile, size: int):
    roots: dict[str, tuple[torch.dtype, int, torch.Tensor]] = {}
    declared = [0]

    def persistent_load(ctx: LoadContext, pid):
        if type(pid) is not tuple or not pid:
            raise CheckpointError(f"unknown persistent id {clip(pid)}")
        typename = pid[0].decode("ascii") if type(pid[0]) is bytes else pid[0]
        if typename == "module" and len(pid) == 4:  # (module, class, source file, source): the class only
            if not is_stand_in_class(pid[1]):
                raise UnsafePickleError(f"refusing module container {clip(pid[1])}")
            return pid[1]
        if typename != "storage" or len(pid) != 6:
            raise CheckpointError(f"unknown persistent id {clip(pid)}")
        _, stype, key, location, numel, view = pid
        if not isinstance(stype, StorageType) or type(key) is not str or len(key) > 64 \
                or type(location) not in (str, bytes) or len(location) > 64 or type(numel) is not int or numel < 0:
            raise CheckpointError(f"invalid storage reference {clip(pid)}")
        if key in roots:
            dtype, n, buf = roots[key]
            if dtype != stype.dtype or n != numel:
                raise CheckpointError(f"storage {clip(key)} is referenced as two different types or sizes")
        else:
            nbytes = numel * stype.dtype.itemsize
            if declared[0] + nbytes + 8 * (len(roots) + 1) > size - f.tell():
                raise CheckpointError(f"the storages declared ({declared[0] + nbytes:,} bytes so far) do not fit in "
                                      "the rest of the file")
            ctx.charge_storage(nbytes)
            declared[0] += nbytes
            dtype, n, buf = roots[key] = (stype.dtype, numel, torch.empty(nbytes, dtype=torch.uint8))
        if view is None:
            return Storage(key, dtype, buf.untyped_storage(), n)
        if type(view) is not tuple or len(view) != 3 or type(view[1]) is not int or type(view[2]) is not int \
                or not 0 <= view[1] <= view[1] + view[2] <= n or view[2] < 0:
            raise CheckpointError(f"invalid storage view {clip(view)} of storage {clip(key)}")
        return Storage(f"{key}[{view[1]}:{view[1] + view[2]}]", dtype, buf.untyped_storage(), view[2], view[1])

    ctx = LoadContext(persistent_load)

    def load():
        return Unpickler(f, ctx).load()

    magic = load()
    if type(magic) is not int or magic != LEGACY_MAGIC_NUMBER:
        raise CheckpointError("a plain pickle, not a torch checkpoint (no torch magic number)")
    protocol = load()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise CheckpointError(f"legacy torch format with protocol {clip(protocol)} is not supported")
    info = load()
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise CheckpointError("only little-endian checkpoints are supported")
    result = load()
    keys = load()
    if not isinstance(keys, list) or len(keys) != len(roots) or not all(type(k) is str for k in keys) \
            or set(keys) != set(roots):
        raise CheckpointError("the storage list does not match the storages the pickle references")
    for key in keys:
        _, numel, buf = roots[key]
        head = f.read(8)
        if len(head) != 8 or int.from_bytes(head, "little", signed=True) != numel:
            raise CheckpointError(f"storage {clip(key)}: its data header does not say {numel:,} elements")
        _fill(buf, f.read, f"storage {clip(key)}")
    return result
