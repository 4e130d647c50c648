"""Crafting hostile checkpoint files: hand-assembled pickles, torch-like zips, legacy streams, and edits of
real files. Used by test_hostile_checkpoints.py and test_checkpoint_fuzz.py; `python tests/helpers/hostile_checkpoints.py DIR`
rewrites the regression corpus (tests/checkpoint/corpus/)."""
from __future__ import annotations

import json
import pickle
import pickletools
import struct
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

# --- pickle opcodes, protocol 2 ------------------------------------------------------------------------

PROTO2, STOP, MARK, NONE, TRUE, FALSE = b"\x80\x02", b".", b"(", b"N", b"\x88", b"\x89"
EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE, REDUCE, BUILD = b"}", b"]", b")", b"R", b"b"


def G(module: str, name: str) -> bytes:
    """GLOBAL"""
    return b"c" + f"{module}\n{name}\n".encode()


def S(text: str) -> bytes:
    """BINUNICODE"""
    b = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(b)) + b


def B(data: bytes) -> bytes:
    """BINBYTES (protocol 3)"""
    return b"B" + struct.pack("<I", len(data)) + data


def I(n: int) -> bytes:  # noqa: E743 - reads like the opcode
    """BININT, or LONG1 beyond 32 bits"""
    if -(1 << 31) <= n < (1 << 31):
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def F(x: float) -> bytes:
    return b"G" + struct.pack(">d", x)


def T(*items: bytes) -> bytes:
    return MARK + b"".join(items) + b"t"


def L(*items: bytes) -> bytes:
    return EMPTY_LIST + (MARK + b"".join(items) + b"e" if items else b"")


def D(*pairs: tuple[bytes, bytes]) -> bytes:
    return EMPTY_DICT + (MARK + b"".join(k + v for k, v in pairs) + b"u" if pairs else b"")


def CALL(func: bytes, *args: bytes) -> bytes:
    return func + T(*args) + REDUCE


def PUT(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def GET(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def PICKLE(body: bytes) -> bytes:
    return PROTO2 + body + STOP


def PID(*items: bytes) -> bytes:
    """BINPERSID of a tuple"""
    return T(*items) + b"Q"


def STORAGE(key: str, numel: int, stype: str = "FloatStorage") -> bytes:
    return PID(S("storage"), G("torch", stype), S(key), S("cpu"), I(numel))


def TENSOR(storage: bytes, size, stride, offset: int = 0) -> bytes:
    return CALL(G("torch._utils", "_rebuild_tensor_v2"), storage, I(offset), T(*map(I, size)), T(*map(I, stride)),
                FALSE, CALL(G("collections", "OrderedDict")))


def OD(*pairs: tuple[bytes, bytes]) -> bytes:
    """collections.OrderedDict() filled by SETITEMS"""
    od = CALL(G("collections", "OrderedDict"))
    return od + (MARK + b"".join(k + v for k, v in pairs) + b"u" if pairs else b"")


def MODULE(module: str, name: str, attrs: bytes) -> bytes:
    """A pickled object as torch.save writes nn modules: NEWOBJ, then BUILD with its __dict__."""
    return G(module, name) + EMPTY_TUPLE + b"\x81" + attrs + BUILD


def distinct_chars(n: int) -> str:
    """`n` different non-ASCII characters: punycode-encoding them takes ~30 s for 15,000, ~50 s for 20,000 (quadratic)."""
    return "".join(chr(0x100 + i) for i in range(n))


# --- files ---------------------------------------------------------------------------------------------

TORCH_SMALL = {"version": b"3\n", "byteorder": b"little", ".data/serialization_id": b"0" * 40}


def torch_zip(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None, top: str = "archive",
              extra: dict[str, bytes] | None = None, deflate: tuple[str, ...] = ()) -> Path:
    """A zip laid out like torch.save's: top/data.pkl, top/data/<key>, version, byteorder, ..."""
    records = {"data.pkl": data_pkl, **{f"data/{k}": v for k, v in (storages or {}).items()}, **TORCH_SMALL,
               **(extra or {})}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in records.items():
            z.writestr(f"{top}/{name}", data, zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
    return path


def rewrite_zip(src: Path, dst: Path, replace: dict | None = None, drop: tuple[str, ...] = (),
                add: dict[str, bytes] | None = None, rename: dict[str, str] | None = None,
                deflate: tuple[str, ...] = ()) -> Path:
    """Copy a zip record by record (names relative to its top folder), with edits."""
    replace, add, rename = replace or {}, add or {}, rename or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        top = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            rest = info.filename[len(top) + 1:]
            if rest in drop:
                continue
            data = replace[rest] if rest in replace else zin.read(info)
            name = f"{top}/{rename.get(rest, rest)}"
            zout.writestr(name, data, zipfile.ZIP_DEFLATED if rest in deflate else zipfile.ZIP_STORED)
        for rest, data in add.items():
            zout.writestr(f"{top}/{rest}", data)
    return dst


def data_pkl_of(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


def splice_after(data: bytes, key: str, new_value: bytes) -> bytes:
    """Replace the opcode that follows each BINUNICODE `key` (the value of that key in a dict or state)
    by `new_value` (a pickle fragment). Memo indices are explicit, so positions may shift."""
    ops = list(pickletools.genops(data))
    out, last, n = [], 0, 0
    for i, (op, arg, _) in enumerate(ops):
        if op.name in ("BINUNICODE", "SHORT_BINUNICODE") and arg == key and i + 2 < len(ops):
            j = i + 1
            if ops[j][0].name in ("BINPUT", "LONG_BINPUT"):
                j += 1
            start, end = ops[j][2], ops[j + 1][2]
            out += [data[last:start], new_value]
            last, n = end, n + 1
    assert n, f"{key!r} not found"
    return b"".join(out) + data[last:]


def legacy_stream(obj_pickle: bytes, keys: list[str], storages: list[tuple[int, bytes]]) -> bytes:
    """torch's legacy (< 1.6) format: magic, protocol, sys info, object, storage keys, raw storages."""
    head = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps({"protocol_version": 1001, "little_endian": True,
                          "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2)
    tail = pickle.dumps(keys, protocol=2) + b"".join(struct.pack("<q", n) + raw for n, raw in storages)
    return head + obj_pickle + tail


def overlapping_zip(path: Path, n: int, record: bytes) -> Path:
    """A zip whose central directory lists `n` storage records that all point at the same data."""
    torch_zip(path, PICKLE(L(*[TENSOR(STORAGE(str(i), len(record) // 4), [len(record) // 4], [1])
                                for i in range(n)])), {str(i): record if i == 0 else b"" for i in range(n)})
    raw = bytearray(path.read_bytes())
    first = None
    pos = raw.find(b"PK\x01\x02")
    while pos != -1:
        name_len, extra_len, comment_len = struct.unpack("<HHH", raw[pos + 28:pos + 34])
        name = bytes(raw[pos + 46:pos + 46 + name_len])
        if name.startswith(b"archive/data/"):
            if first is None:
                first = raw[pos + 16:pos + 28], raw[pos + 42:pos + 46]  # crc, sizes / local header offset
            raw[pos + 16:pos + 28], raw[pos + 42:pos + 46] = first
        pos = raw.find(b"PK\x01\x02", pos + 46 + name_len + extra_len + comment_len)
    path.write_bytes(bytes(raw))
    return path


def deflate_bomb(path: Path, expanded: int) -> Path:
    """data.pkl deflated from `expanded` bytes (a valid pickle followed by zero padding... never read)."""
    body = PICKLE(D((S("model"), NONE)))
    payload = body + b"\x00" * (expanded - len(body))
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("archive/data.pkl")
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, payload)
        for name, data in TORCH_SMALL.items():
            z.writestr(f"archive/{name}", data)
    return path


def lying_deflate(path: Path, declared: int, expanded: int) -> Path:
    """A deflated data.pkl whose directory entry claims `declared` bytes but whose stream holds more."""
    deflate_bomb(path, expanded)
    raw = bytearray(path.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = raw.find(sig)
        raw[pos + off:pos + off + 4] = struct.pack("<I", declared)
    path.write_bytes(bytes(raw))
    return path


# --- the regression corpus ---------------------------------------------------------------------------

TORCHSCRIPT_MARKER = "YOLOR_DEPLOY_TORCHSCRIPT_RAN"


def torchscript_file(path: Path) -> Path:
    """A TorchScript archive whose __setstate__ prints TORCHSCRIPT_MARKER when torch.jit.load runs it
    (TorchScript cannot write files: printing is the side effect a test can see)."""
    import torch

    class Marker(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w", torch.ones(2))

        def forward(self, x):
            return x * self.w

        @torch.jit.export
        def __getstate__(self):
            return (self.w, self.training)

        @torch.jit.export
        def __setstate__(self, state: tuple[torch.Tensor, bool]):
            print("YOLOR_DEPLOY_TORCHSCRIPT_RAN")
            self.w = state[0]
            self.training = state[1]

    torch.jit.save(torch.jit.script(Marker()), str(path))
    return path


def corpus_cases() -> dict[str, tuple[Callable[[Path], object], str]]:
    """name -> (writer(path), regex the CheckpointError message must match)"""
    fp16 = bytes(1400)  # 700 fp16 zeros
    return {
        "torchscript.pt": (torchscript_file, r"TorchScript archive"),
        "punycode.pt": (lambda p: torch_zip(p, PICKLE(D((S("model"), CALL(G("_codecs", "encode"), S(distinct_chars(15_000)),
                                                                           S("punycode")))))),
                        r"_codecs.encode with codec punycode"),
        "bytearray-12e9.pt": (lambda p: p.write_bytes(PICKLE(D((S("model"), CALL(G("builtins", "bytearray"),
                                                                                 I(12_000_000_000)))))),
                              r"bytearray\(\) of .*only bytearray\(\) and bytearray\(<bytes>\)"),
        "zip-bomb.pt": (lambda p: deflate_bomb(p, 8 << 20), r"expands .* over 100x \(a zip bomb\?\)"),
        "fp16-stride0.pt": (lambda p: torch_zip(p, PICKLE(D((S("model"), TENSOR(STORAGE("0", 700, "HalfStorage"),
                                                                                [2048, 2048, 768], [0, 0, 0])))),
                                                {"0": fp16}), r"overlap"),
        "overlapping-records.pt": (lambda p: overlapping_zip(p, 64, bytes(4096)), r"overlaps the next one"),
        "legacy-huge-storage.pt": (lambda p: p.write_bytes(legacy_stream(
            PICKLE(D((S("model"), TENSOR(PID(S("storage"), G("torch", "FloatStorage"), S("1"), S("cpu"),
                                             I(3_000_000_000), NONE), [3_000_000_000], [1])))), ["1"], [])),
                                   r"do not fit in the rest of the file"),
        "standin-list-state.pt": (lambda p: torch_zip(p, PICKLE(D((S("model"), MODULE("models.yolo", "Model",
                                                                                      L(I(1), I(2))))))),
                                  r"state of type list"),
        "os-system.pt": (lambda p: torch_zip(p, PICKLE(D((S("model"), CALL(G("posix", "system"),
                                                                           S("touch YOLOR_DEPLOY_PWNED")))))),
                         r"refusing global 'posix.system'"),
    }


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (write, pattern) in corpus_cases().items():
        write(folder / name)
        expected[name] = pattern
    (folder / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    write_corpus(Path(sys.argv[1]))
