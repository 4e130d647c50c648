"""The checkpoint loader is a trust boundary: crafted files (code execution, hangs, memory blow-ups from
tiny files, malformed contents) are refused with one `CheckpointError` line naming the file, quickly,
without running anything and within bounded memory; legitimate files load exactly as torch reads them."""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import struct
import subprocess
import sys
import time
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import yolor_deploy
from helpers.fixtures import fixture_path, main_cfg
from helpers.hostile_checkpoints import (
    BUILD,
    CALL,
    EMPTY_TUPLE,
    FALSE,
    GET,
    MODULE,
    NONE,
    OD,
    PICKLE,
    PID,
    PUT,
    STORAGE,
    TENSOR,
    TORCHSCRIPT_MARKER,
    TRUE,
    B,
    D,
    F,
    G,
    I,
    L,
    S,
    T,
    corpus_cases,
    data_pkl_of,
    deflate_bomb,
    distinct_chars,
    legacy_stream,
    lying_deflate,
    overlapping_zip,
    rewrite_zip,
    splice_after,
    torch_zip,
    torchscript_file,
)
from yolor_deploy.checkpoint import limits, load_checkpoint, save_checkpoint
from yolor_deploy.checkpoint.archive import read_checkpoint as safe_torch_load
from yolor_deploy.cli.main import main as cli_main
from yolor_deploy.errors import CheckpointError, UnsafePickleError
from yolor_deploy.nn.registry import default_names

CORPUS = Path(__file__).parent / "corpus"
SECONDS = 5.0  # every refusal, on 2 busy cores
SYSTEM = f"{os.system.__module__}.system"  # posix.system (nt.system on Windows)


def refused(path: Path, match: str | None = None, error: type[Exception] = CheckpointError, seconds: float = SECONDS,
            **kw) -> str:
    """Load `path`: it must raise `error`, on one line starting with the path, within `seconds`."""
    t0 = time.perf_counter()
    with pytest.raises(error) as e:
        load_checkpoint(path, **kw)
    elapsed = time.perf_counter() - t0
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    assert match is None or re.search(match, msg), msg
    assert elapsed < seconds, f"{path.name}: refused after {elapsed:.1f} s"
    return msg


def ok_model(tmp_path: Path, attrs: bytes = b"") -> Path:
    """{'model': a pickled models.yolo.Model stand-in with `attrs` (a dict fragment)}."""
    return torch_zip(tmp_path / "model.pt", PICKLE(D((S("model"), MODULE("models.yolo", "Model", attrs or D())))))


def model_dict(*pairs) -> bytes:
    return D((S("training"), FALSE), *pairs)


# --- code execution -------------------------------------------------------------------------------------

@pytest.fixture
def torch_never_loads(monkeypatch, tmp_path):
    """Every torch entry point that could run a file's code writes a marker and fails."""
    marker = tmp_path / "torch-was-called"

    def trap(*args, **kwargs):
        marker.write_text("called")
        raise AssertionError("torch deserialization was called")

    for owner, name in ((torch, "load"), (torch.jit, "load"), (torch._C, "import_ir_module"),
                        (torch._C, "import_ir_module_from_buffer"), (torch.serialization, "load")):
        if hasattr(owner, name):
            monkeypatch.setattr(owner, name, trap)
    yield marker
    assert not marker.exists(), "torch.load / torch.jit.load was called on an untrusted file"


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_archive_is_refused_before_torch_sees_it(tmp_path, torch_never_loads, capfd):
    ts = torchscript_file(tmp_path / "scripted.pt")
    refused(ts, r"a TorchScript archive \(torch.jit.save; record code/")
    # the same archive, minus the records torch uses to recognise it, is refused all the same
    refused(rewrite_zip(ts, tmp_path / "no-constants.pt", drop=("constants.pkl",)), "TorchScript archive")
    stripped = rewrite_zip(ts, tmp_path / "stripped.pt", drop=tuple(
        n.split("/", 1)[1] for n in zipfile.ZipFile(ts).namelist() if "/code/" in n or "constants" in n))
    refused(stripped, r"refusing global '__torch__\.")  # its data.pkl names TorchScript classes
    assert TORCHSCRIPT_MARKER not in capfd.readouterr().out


@pytest.mark.parametrize("record", ["constants.pkl", "bytecode.pkl", "extra/producer_info.json",
                                    "code/__torch__.py", ".data/version.pkl", "x.debug_pkl"])
def test_torchscript_records_in_a_plain_checkpoint_are_refused(tmp_path, record, torch_never_loads):
    p = torch_zip(tmp_path / "plain.pt", PICKLE(D((S("model"), NONE))), extra={record: b"x"})
    refused(p, rf"TorchScript archive \(torch.jit.save; record {re.escape(record)}\)")


@pytest.mark.parametrize("case,match", [
    ("unexpected", r"unexpected record 'archive/payload.py'"),
    ("two-tops", r"records must sit in one top-level folder"),
    ("no-folder", r"records must sit in one top-level folder"),
    ("duplicate", r"two records of the same name"),
    ("no-data-pkl", r"no archive/data.pkl record"),
])
def test_zip_layout_is_checked(tmp_path, case, match):
    p = tmp_path / f"{case}.pt"
    body = PICKLE(D((S("model"), NONE)))
    if case == "unexpected":
        torch_zip(p, body, extra={"payload.py": b"import os"})
    else:
        with zipfile.ZipFile(p, "w") as z:
            if case != "no-data-pkl":
                z.writestr("archive/data.pkl" if case != "no-folder" else "data.pkl", body)
            z.writestr("archive/version", b"3\n")
            if case == "two-tops":
                z.writestr("other/version", b"3\n")
            if case == "duplicate":
                with pytest.warns(UserWarning, match="Duplicate name"):
                    z.writestr("archive/version", b"3\n")
    refused(p, match)


EVIL = "touch YOLOR_DEPLOY_PWNED"  # relative to the test's working directory (a tmp folder)


@pytest.mark.parametrize("case,body,match,error", [
    ("reduce", CALL(G(*SYSTEM.split(".")), S(EVIL)), rf"refusing global '{SYSTEM}'", UnsafePickleError),
    ("stack_global", S("builtins") + S("eval") + b"\x93" + T(S("1")) + b"R", r"refusing global 'builtins.eval'",
     UnsafePickleError),
    ("newline_in_name", S("os\nx") + S("system") + b"\x93", r"refusing global 'os\?x.system'", UnsafePickleError),
    ("inst", b"(" + S(EVIL) + b"i" + SYSTEM.replace(".", "\n").encode() + b"\n", r"refusing pickle opcode INST",
     UnsafePickleError),
    ("obj", b"(" + G(*SYSTEM.split(".")) + S(EVIL) + b"o", rf"refusing global '{SYSTEM}'", UnsafePickleError),
    ("obj_allowed_class", b"(" + G("collections", "OrderedDict") + b"o", r"refusing pickle opcode OBJ",
     UnsafePickleError),
    ("ext1", b"\x82\x01", r"refusing pickle opcode EXT1", UnsafePickleError),
    ("call_ndarray", CALL(G("numpy", "ndarray"), T(I(10 ** 10))), r"refusing to call <class 'numpy.ndarray'>",
     UnsafePickleError),
    ("call_storage_type", CALL(G("torch", "FloatStorage"), I(10 ** 10)), r"refusing to call <storage type",
     UnsafePickleError),
    ("call_dtype", CALL(G("torch", "float32")), r"refusing to call torch.float32", UnsafePickleError),
    ("newobj_allowed", G("collections", "OrderedDict") + EMPTY_TUPLE + b"\x81", r"refusing to build",
     UnsafePickleError),
    ("copyreg", CALL(G("copyreg", "_reconstructor"), G("collections", "OrderedDict"), G("builtins", "dict"), NONE),
     r"refusing global 'copyreg._reconstructor'", UnsafePickleError),
    ("load_from_bytes", CALL(G("torch.storage", "_load_from_bytes"), B(b"PK")),
     r"refusing global 'torch.storage._load_from_bytes'", UnsafePickleError),
    ("nn_functional", G("torch.nn.modules.conv", "F"), r"refusing global 'torch.nn.modules.conv.F'",
     UnsafePickleError),
    ("nn_dotted", G("torch.nn.modules.module", "Module.__init__"),
     r"refusing global 'torch.nn.modules.module.Module.__init__'", UnsafePickleError),
    ("nn_not_imported", G("torch.nn.modules.not_there", "Conv2d"), r"refusing global", UnsafePickleError),
    ("upstream_unknown", G("models.common", "Evil"), r"refusing global 'models.common.Evil'", UnsafePickleError),
    ("rebuild_from_type", G("torch._tensor", "_rebuild_from_type_v2"), r"refusing global", UnsafePickleError),
    ("build_on_set", CALL(G("builtins", "set")) + D((S("x"), I(1))) + BUILD, r"refusing to set the state of",
     UnsafePickleError),
    ("build_on_tuple", T(I(1)) + D((S("x"), I(1))) + BUILD, r"refusing to set the state of", UnsafePickleError),
    ("ordered_dict_class", OD() + D((S("__class__"), G("models.yolo", "Model"))) + BUILD, r"OrderedDict state",
     CheckpointError),
    ("standin_dunder", MODULE("models.yolo", "Model", D((S("__class__"), G("collections", "OrderedDict")))),
     r"invalid attribute name __class__", CheckpointError),
    ("setitem_on_standin", MODULE("models.yolo", "Model", D()) + S("k") + I(1) + b"s", r"SETITEM on a Model",
     CheckpointError),
    ("append_on_dict", D() + I(1) + b"a", r"APPEND on a dict", CheckpointError),
])
def test_code_paths_are_refused(tmp_path, monkeypatch, case, body, match, error):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "YOLOR_DEPLOY_PWNED"
    # the payload both as the whole pickle and inside a checkpoint dict
    for name, data in (("whole", PICKLE(body)), ("inside", PICKLE(D((S("epoch"), I(1)), (S("model"), body))))):
        refused(torch_zip(tmp_path / f"{case}-{name}.pt", data), match, error)
    assert not marker.exists()


def test_tensor_state_cannot_be_replaced_by_build(tmp_path):
    """BUILD on a tensor would call Tensor.__setstate__ -> set_(storage, offset, size, stride), bypassing the
    bounds checks of the rebuild."""
    t = TENSOR(STORAGE("0", 4), [4], [1]) + PUT(1)
    body = D((S("model"), t + T(GET(1), I(0), T(I(1 << 30)), T(I(0))) + BUILD))
    refused(torch_zip(tmp_path / "set.pt", PICKLE(body), {"0": bytes(16)}), r"refusing to set the state of")


@pytest.mark.parametrize("hooks,match", [
    (OD((I(0), S("x"))), r"a tensor carries .*hooks and extra state are refused"),
    (D((S("x"), I(1))), r"a tensor carries"),
])
def test_tensor_hooks_are_refused(tmp_path, hooks, match):
    body = CALL(G("torch._utils", "_rebuild_tensor_v2"), STORAGE("0", 4), I(0), T(I(4)), T(I(1)), FALSE, hooks)
    refused(torch_zip(tmp_path / "hooks.pt", PICKLE(D((S("model"), body))), {"0": bytes(16)}), match)


def test_parameter_state_is_refused(tmp_path):
    body = CALL(G("torch._utils", "_rebuild_parameter_with_state"), TENSOR(STORAGE("0", 4), [4], [1]), FALSE, OD(),
                D((S("data"), I(1))))
    refused(torch_zip(tmp_path / "pstate.pt", PICKLE(D((S("model"), body))), {"0": bytes(16)}), r"extra state")


def test_legacy_format_is_read_without_torch_and_its_containers_checked(tmp_path, torch_never_loads):
    evil = legacy_stream(PICKLE(D((S("model"), PID(S("module"), G(*SYSTEM.split(".")), S("f"), S("src"))))), [], [])
    (tmp_path / "evil.pt").write_bytes(evil)
    refused(tmp_path / "evil.pt", rf"refusing global '{SYSTEM}'", UnsafePickleError)
    odd = legacy_stream(PICKLE(D((S("model"), PID(S("module"), G("collections", "OrderedDict"), S("f"), S("s"))))),
                        [], [])
    (tmp_path / "odd.pt").write_bytes(odd)
    refused(tmp_path / "odd.pt", r"refusing module container", UnsafePickleError)
    (tmp_path / "plain.pt").write_bytes(pickle.dumps({"model": {"w": [1.0]}}, protocol=2))
    refused(tmp_path / "plain.pt", r"a plain pickle, not a torch checkpoint")


# --- hangs ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,match", [
    ((S(distinct_chars(40_000)), S("punycode")), r"_codecs.encode with codec punycode: only 'latin1'"),
    ((S("abc"), S("rot13")), r"codec rot13"),
    ((S("abc"), S("no-such-codec")), r"codec no-such-codec"),
    ((S("abc"), S("latin1"), S("ignore")), r"codec latin1"),
    ((I(5), S("latin1")), r"_codecs.encode of a int"),
])
def test_codecs_encode_only_latin1(tmp_path, args, match):
    refused(torch_zip(tmp_path / "codec.pt", PICKLE(D((S("model"), CALL(G("_codecs", "encode"), *args))))), match)


def test_codecs_encode_input_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_CODEC_CHARS", 1000)
    p = torch_zip(tmp_path / "long.pt", PICKLE(D((S("model"), CALL(G("_codecs", "encode"), S("a" * 1001),
                                                                    S("latin1"))))))
    refused(p, r"only strings of at most")


def test_opcode_budget(tmp_path):
    """2M opcodes (no real checkpoint comes near) take well under a second to refuse."""
    p = torch_zip(tmp_path / "ops.pt", PICKLE(b"N0" * (limits.MAX_PICKLE_OPS // 2 + 1) + D((S("model"), NONE))))
    refused(p, r"more than 2,000,000 opcodes")


@pytest.mark.parametrize("key", [I((1 << 61) - 1), I(-(1 << 62)), T(I(1), I(2)), F(1.5), NONE + b"0" + F(0.5)])
def test_dict_keys_that_could_collide_are_refused(tmp_path, key):
    """Integers hash modulo 2^61-1 and tuples by a fixed function: a file could make every key of a dict
    collide (quadratic inserts); only strings (keyed hashing) and small integers are accepted."""
    refused(torch_zip(tmp_path / "keys.pt", PICKLE(D((S("model"), D((key, I(1))))))),
            r"key .* only strings and small integers are accepted")


def test_memo_indices_that_could_collide_are_refused(tmp_path):
    """The text PUT opcode takes any integer: memo keys k * (2^61 - 1) would all collide."""
    puts = b"".join(NONE + b"p" + str(k * ((1 << 61) - 1)).encode() + b"\n0" for k in range(1, 1000))
    refused(torch_zip(tmp_path / "memo.pt", PICKLE(puts + D((S("model"), NONE)))), r"PUT to memo index")


def test_colliding_set_items_are_refused(tmp_path):
    items = L(*[I(k * ((1 << 61) - 1)) for k in range(1, 50)])
    refused(torch_zip(tmp_path / "set.pt", PICKLE(D((S("model"), CALL(G("builtins", "set"), items))))),
            r"only strings and small integers")


def _module_tree(depth: int, fanout_same_child: bool = False) -> bytes:
    """Model -> _modules {'a': m1 (, 'b': m1)} -> ... nested `depth` deep, built with memo references."""
    body, memo = MODULE("models.common", "Conv", D((S("_modules"), OD()))) + PUT(0), 0
    for i in range(1, depth + 1):
        children = [(S("a"), GET(memo))] + ([(S("b"), GET(memo))] if fanout_same_child else [])
        body += MODULE("models.common", "Conv", D((S("_modules"), OD(*children)))) + PUT(i)
        memo = i
    return body + b"0"  # leave the stack clean: the tree stays in the memo


@pytest.mark.parametrize("case,match", [
    ("dag", r"pickled module model\.b also appears elsewhere in the model"),
    ("deep", r"nest deeper than 64 levels"),
    ("cycle", r"contains itself"),
])
def test_module_trees_are_walked_in_bounds(tmp_path, case, match):
    if case == "dag":  # 40 levels of two references to one child: 2^40 paths
        tree, top = _module_tree(40, fanout_same_child=True), 40
    elif case == "deep":
        tree, top = _module_tree(100), 100
    else:  # Model._modules = {'m': Model}
        tree = G("models.yolo", "Model") + EMPTY_TUPLE + b"\x81" + PUT(0) + D(
            (S("yaml"), D()), (S("_modules"), OD((S("m"), GET(0))))) + BUILD + b"0"
        top = 0
    model = GET(top) if case != "cycle" else GET(0)
    if case != "cycle":  # a Model on top of the tree
        model = MODULE("models.yolo", "Model", D((S("yaml"), D()), (S("_modules"), OD((S("model"), GET(top))))))
    refused(torch_zip(tmp_path / f"{case}.pt", PICKLE(tree + D((S("model"), model)))), match)


def test_module_count_and_names_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_MODULES", 50)
    many = OD(*[(S(f"m{i}"), MODULE("models.common", "Conv", D())) for i in range(60)])
    p = torch_zip(tmp_path / "many.pt", PICKLE(D((S("model"), MODULE("models.yolo", "Model", D(
        (S("yaml"), D()), (S("_modules"), many)))))))
    refused(p, r"more than 50 modules")
    long = OD((S("x" * 129), MODULE("models.common", "Conv", D())))
    p = torch_zip(tmp_path / "long.pt", PICKLE(D((S("model"), MODULE("models.yolo", "Model", D(
        (S("yaml"), D()), (S("_modules"), long)))))))
    refused(p, r"_modules is .*not a dict keyed by names")
    monkeypatch.setattr(limits, "MAX_STATE_ENTRIES", 10)
    params = OD(*[(S(f"p{i}"), TENSOR(STORAGE("0", 4), [4], [1])) for i in range(11)])
    p = torch_zip(tmp_path / "params.pt", PICKLE(D((S("model"), MODULE("models.yolo", "Model", D(
        (S("yaml"), D()), (S("_parameters"), params)))))), {"0": bytes(16)})
    refused(p, r"more than 10 parameters and buffers")


def test_deeply_nested_containers_do_not_recurse(tmp_path):
    nested = b"]" * 100_000 + b"a" * 99_999
    refused(torch_zip(tmp_path / "nested.pt", PICKLE(D((S("model"), nested)))), r"'model' entry is a list")


# --- memory: tiny files that would allocate gigabytes, loaded in a child whose peak RSS is measured -------

def _memory_cases(tmp: Path) -> dict[str, str]:
    """file -> regex of its refusal"""
    fp16 = bytes(1400)
    cases: dict[str, tuple[bytes | None, str]] = {
        "bytearray.pt": (CALL(G("builtins", "bytearray"), I(12_000_000_000)), r"only bytearray\(\) and"),
        "bytes.pt": (CALL(G("__builtin__", "bytes"), I(12_000_000_000)), r"only bytes\(\) and"),
        "range.pt": (CALL(G("builtins", "set"), CALL(G("builtins", "range"), I(10 ** 10))),
                     r"refusing global 'builtins.range'"),
        "list.pt": (CALL(G("builtins", "list"), S("x" * 100)), r"refusing global 'builtins.list'"),
        "set-of-str.pt": (CALL(G("builtins", "frozenset"), S("x" * 100)), r"frozenset\(\) of .*only a list"),
        "bytearray8.pt": (b"\x96" + (12_000_000_000).to_bytes(8, "little"), r"BYTEARRAY8 of 12,000,000,000 bytes"),
        "np-reconstruct.pt": (CALL(G("numpy.core.multiarray", "_reconstruct"), G("numpy", "ndarray"),
                                   T(I(10 ** 10)), B(b"b")), r"numpy _reconstruct.* refused"),
        "np-setstate.pt": (CALL(G("numpy._core.multiarray", "_reconstruct"), G("numpy", "ndarray"), T(I(0)), B(b"b"))
                           + T(I(1), T(I(10 ** 9)), CALL(G("numpy", "dtype"), S("f8"), FALSE, TRUE), FALSE, B(b""))
                           + BUILD, r"numpy array state of shape \(1000000000,\)"),
        "np-void-dtype.pt": (CALL(G("numpy", "dtype"), S("V999999"), FALSE, TRUE), r"dtype .* refused"),
        "np-object-dtype.pt": (CALL(G("numpy", "dtype"), S("O8"), FALSE, TRUE), r"dtype dtype\('O'\) refused"),
        "np-dtype-flags.pt": (CALL(G("numpy", "dtype"), S("f8"), FALSE, TRUE) + T(I(3), S("<"), NONE, NONE, NONE,
                                                                                I(-1), I(-1), I(63)) + BUILD,
                              r"numpy dtype state .* refused"),
        "np-scalar.pt": (CALL(G("numpy.core.multiarray", "scalar"), CALL(G("numpy", "dtype"), S("f8"), FALSE, TRUE),
                              B(b"\x00" * 9)), r"numpy scalar of .* refused"),
        "torch-size.pt": (CALL(G("torch", "Size"), T(*[I(1)] * 17)), r"torch.Size is .* not a tuple of at most 16"),
    }
    out = {}
    for name, (body, match) in cases.items():
        torch_zip(tmp / name, PICKLE(D((S("model"), body))))
        out[name] = match
    tensors = {  # on a 1,400-byte fp16 storage (700 elements) or a 4 MiB fp32 one
        "fp16-stride0.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [2048, 2048, 768], [0, 0, 0]), "overlap"),
        "sliding-window.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [350, 350], [1, 1]), "overlap"),
        "stride0-size1-ok-but-oob.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [1, 701], [0, 1]),
                                        "reaches past the end"),
        "offset-oob.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [10], [1], offset=695), "reaches past the end"),
        "huge-size.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [1 << 40], [1]), "reaches past the end"),
        "negative-stride.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [10], [-1]), r"stride \(-1,\) holds -1, not an integer"),
        "negative-offset.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [10], [1], offset=-5), r"offset is -5"),
        "numel-over-record.pt": (TENSOR(STORAGE("0", 3_000_000_000, "HalfStorage"), [10], [1]),
                                 r"but its record holds 1,400"),
        "size-stride-mismatch.pt": (TENSOR(STORAGE("0", 700, "HalfStorage"), [10, 10], [1]), r"but stride"),
        "aliases.pt": (L(*[TENSOR(STORAGE("1", 4096), [4096], [1])] * 128), r"would exceed 2x the storage"),
    }
    for name, (body, match) in tensors.items():
        torch_zip(tmp / name, PICKLE(D((S("model"), body))), {"0": fp16, "1": bytes(4 << 12)})
        out[name] = match
    deflate_bomb(tmp / "zip-bomb.pt", 8 << 20)
    out["zip-bomb.pt"] = r"expands .* over 100x \(a zip bomb\?\)"
    deflate_bomb(tmp / "zip-bomb-big.pt", 40 << 20)
    out["zip-bomb-big.pt"] = r"record data.pkl is 41,943,040 bytes, over the 33,554,432-byte limit"
    lying_deflate(tmp / "zip-lying-size.pt", 1000, 40 << 20)
    out["zip-lying-size.pt"] = r"unreadable checkpoint .*(CRC|pickle)"
    overlapping_zip(tmp / "overlap.pt", 64, bytes(4096))
    out["overlap.pt"] = r"overlaps the next one"
    (tmp / "legacy-huge.pt").write_bytes(legacy_stream(
        PICKLE(D((S("model"), TENSOR(PID(S("storage"), G("torch", "FloatStorage"), S("1"), S("cpu"), I(3 * 10 ** 9),
                                         NONE), [3 * 10 ** 9], [1])))), ["1"], []))
    out["legacy-huge.pt"] = r"do not fit in the rest of the file"
    # the worst opcode stream within the opcode budget: 2M empty sets (~230 bytes each) on the stack
    torch_zip(tmp / "set-flood.pt", PICKLE(b"\x8f" * (limits.MAX_PICKLE_OPS - 10) + D((S("model"), NONE))))
    out["set-flood.pt"] = r"'model' entry is a NoneType"
    return out


_CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a failing defence must not take the machine
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.errors import CheckpointError
out = {}
for p in sys.argv[1:]:
    t0 = time.perf_counter()
    try:
        load_checkpoint(p)
        out[p] = ["loaded", "", 0.0]
    except CheckpointError as e:
        out[p] = [type(e).__name__, str(e), time.perf_counter() - t0]
out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def test_tiny_files_cannot_blow_up_memory(tmp_path):
    cases = _memory_cases(tmp_path)
    assert all((tmp_path / n).stat().st_size < 50_000 for n in cases if n != "set-flood.pt")
    src = str(Path(yolor_deploy.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _CHILD, *(str(tmp_path / n) for n in cases)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    rss = got.pop("maxrss_kib") * 1024
    for name, match in cases.items():
        kind, msg, seconds = got[str(tmp_path / name)]
        assert kind in ("CheckpointError", "UnsafePickleError"), (name, kind)
        assert re.search(match, msg) and "out of memory" not in msg, (name, msg)
        assert "\n" not in msg and msg.startswith(str(tmp_path / name))
        assert seconds < (SECONDS if name != "set-flood.pt" else 3 * SECONDS), (name, seconds)
    print(f"peak RSS of the child (torch imported, {len(cases)} hostile files): {rss / 2 ** 20:.0f} MiB")
    assert rss < 2 << 30


# --- malformed contents: one line, never a traceback -------------------------------------------------------

@pytest.mark.parametrize("case,body,match", [
    ("pid-module", D((S("model"), PID(S("module"), I(1), S("f"), S("s")))), r"unknown persistent id"),
    ("pid-text", D((S("model"), b"P0\n")), r"unknown persistent id 0"),
    ("pid-missing-record", D((S("model"), TENSOR(STORAGE("9", 4), [4], [1])),), r"storage 9, which has no data/"),
    ("pid-bad-location", D((S("model"), PID(S("storage"), G("torch", "FloatStorage"), S("0"), I(5), I(1)))),
     r"has location 5"),
    ("pid-storage-type", D((S("model"), PID(S("storage"), G("torch", "float32"), S("0"), S("cpu"), I(1)))),
     r"storage of type torch.float32"),
    ("complex-storage", D((S("model"), STORAGE("0", 1, "ComplexFloatStorage"))),
     r"refusing global 'torch.ComplexFloatStorage'"),
    ("tensor-on-int", D((S("model"), CALL(G("torch._utils", "_rebuild_tensor_v2"), I(1), I(0), T(), T(), FALSE,
                                          NONE))), r"a tensor is built on 1, not on a storage record"),
    ("tensor-args", D((S("model"), CALL(G("torch._utils", "_rebuild_tensor_v2"), I(1)))),
     r"torch._utils._rebuild_tensor_v2 called with unexpected arguments"),
    ("parameter-of-str", D((S("model"), CALL(G("torch._utils", "_rebuild_parameter"), S("x"), FALSE, OD()))),
     r"a parameter wraps x, not a tensor"),
    ("device", D((S("model"), CALL(G("torch", "device"), S("cuda:abc")))),
     r"torch.device of \('cuda:abc', None\): Invalid device string"),
    ("memo", D((S("model"), GET(77))), r"unreadable checkpoint.*Memo value not found"),
    ("stack-underflow", b"t", r"unreadable checkpoint"),
    ("odd-setitems", D() + b"(" + S("k") + b"u", r"SETITEMS with an odd number"),
    ("not-a-dict", L(I(1)), r"not a YOLOR checkpoint \(a pickled list, not a dict\)"),
    ("model-int", D((S("model"), I(5))), r"'model' entry is a int"),
    ("model-conv", D((S("model"), MODULE("models.common", "Conv", D()))), r"'model' is a pickled models.common.Conv"),
    ("model-no-yaml", D((S("model"), MODULE("models.yolo", "Model", D()))), r"carries no 'yaml' config"),
    ("standin-list-state", D((S("model"), MODULE("models.yolo", "Model", L(I(1))))), r"state of type list"),
    ("standin-pair-state", D((S("model"), MODULE("models.yolo", "Model", T(L(), NONE)))), r"state of type list"),
    ("parameters-list", D((S("model"), MODULE("models.yolo", "Model", model_dict((S("yaml"), D()),
                                                                                  (S("_parameters"), L()))))),
     r"_parameters is \[\], not a dict"),
    ("parameter-str", D((S("model"), MODULE("models.yolo", "Model", model_dict(
        (S("yaml"), D()), (S("_parameters"), OD((S("w"), S("abc")))))))), r"parameter w is abc, not a tensor"),
    ("buffer-int", D((S("model"), MODULE("models.yolo", "Model", model_dict(
        (S("yaml"), D()), (S("_buffers"), OD((S("b"), I(3)))))))), r"buffer b is 3, not a tensor"),
    ("child-int", D((S("model"), MODULE("models.yolo", "Model", model_dict(
        (S("yaml"), D()), (S("_modules"), OD((S("c"), I(3)))))))), r"pickled module c is 3, not a module"),
    ("skip-set", D((S("model"), MODULE("models.yolo", "Model", model_dict(
        (S("yaml"), D()), (S("_non_persistent_buffers_set"), I(3)))))), r"_non_persistent_buffers_set is 3"),
    ("nc-str", D((S("model"), MODULE("models.yolo", "Model", model_dict((S("yaml"), D()), (S("nc"), S("abc")))))),
     r"nc is abc, not a class count"),
    ("yaml-garbage", D((S("model"), MODULE("models.yolo", "Model", model_dict((S("yaml"), D((S("nc"), L()))))))),
     r"model\.pt: "),
    ("main-no-tensors", D((S("model"), D((S("a"), I(1))))), r"the state_dict holds no tensors"),
    ("ours-no-state", D((S("format"), S("yolor-deploy")), (S("spec"), D())), r"without its 'state_dict'"),
    ("ours-no-spec", D((S("format"), S("yolor-deploy"))), r"without its 'spec'"),
    ("ours-names", D((S("format"), S("yolor-deploy")), (S("spec"), D()), (S("state_dict"), D()),
                     (S("names"), L(I(1)))), r"'names' is \[1\], not a list of class names"),
    ("ours-eps", D((S("format"), S("yolor-deploy")), (S("spec"), D()), (S("state_dict"), D()), (S("bn_eps"), L())),
     r"'bn_eps' is \[\], not a dict"),
    ("ours-variant", D((S("format"), S("yolor-deploy")), (S("spec"), D()), (S("state_dict"), D()),
                       (S("variant"), I(1))), r"'variant' is 1, not a name"),
    ("ours-spec", D((S("format"), S("yolor-deploy")), (S("spec"), D((S("x"), I(1)))), (S("state_dict"), D())),
     r"model\.pt: "),
    ("ours-main-spec", D((S("format"), S("yolor-deploy")), (S("branch"), S("main")), (S("spec"), D((S("x"), L()))),
                         (S("state_dict"), D())), r"model\.pt: "),
])
def test_malformed_contents_are_one_line_errors(tmp_path, case, body, match):
    refused(torch_zip(tmp_path / "model.pt", PICKLE(body), {"0": bytes(16)}), match)


@pytest.fixture(scope="module")
def paper_pkl() -> bytes:
    return data_pkl_of(fixture_path("paper-ssss-s2d.pt"))


@pytest.mark.parametrize("key,value,match", [
    ("eps", S("abc"), r"batch-norm \S+: eps abc is not a number in \(0, 1\)"),  # (the first module's)
    ("eps", F(math.nan), r"eps nan is not a number"),
    ("eps", F(5.0), r"eps 5.0 is not a number in \(0, 1\)"),
    ("nc", S("abc"), r"\bnc\b.* abc|\bnc\b.*'abc'"),  # (the first 'nc' is the yaml's: its parser's message)
    ("nc", I(-3), r"\bnc\b.*-3"),
    ("yaml", "yamx", r"carries no 'yaml' config"),  # a str: the key is renamed
    ("names", "namex", None),  # no names: default ones
    ("yaml_file", L(), None),  # not a str: '<embedded yaml>'
])
def test_edited_upstream_checkpoint(tmp_path, paper_pkl, key, value, match):
    if isinstance(value, str):
        edited = paper_pkl.replace(S(key), S(value))
    else:
        edited = splice_after(paper_pkl, key, value)
    p = rewrite_zip(fixture_path("paper-ssss-s2d.pt"), tmp_path / "edited.pt", replace={"data.pkl": edited})
    if match is None:
        m = load_checkpoint(p)
        assert m.names == default_names(m.nc) or key != "names"
        assert m.variant == "<embedded yaml>" or key != "yaml_file"
    else:
        refused(p, match, seconds=30)  # these build the model first


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> dict:
    p = tmp_path_factory.mktemp("ours") / "ours.pt"
    save_checkpoint(load_checkpoint(fixture_path("paper-ssss-s2d.pt")), p)
    return torch.load(p, weights_only=True)


@pytest.mark.parametrize("edit,match", [
    (lambda c: c.pop("state_dict"), r"without its 'state_dict'"),
    (lambda c: c["bn_eps"].update({next(iter(c["bn_eps"])): "abc"}), r"eps abc is not a number"),
    (lambda c: c["bn_eps"].update({next(iter(c["bn_eps"])): -1.0}), r"eps -1.0 is not a number"),
    (lambda c: c["state_dict"].update({"extra": 5}), r"state_dict entry extra is 5, not a named tensor"),
    (lambda c: c["state_dict"].update({"extra": torch.zeros(1)}), r"weights do not fit the architecture: 1 unexpected"),
    (lambda c: c["state_dict"].update({"bad\nkey": torch.zeros(1)}), r"unexpected \(only: bad\?key\)"),
    (lambda c: c.update(names=[1, 2]), r"'names' is \[1, 2\]"),
    (lambda c: c.update(spec={"nc": "x"}), r"ours.pt: "),
    (lambda c: c.update(spec=[]), r"without its 'spec'"),
])
def test_edited_own_format(tmp_path, ours, edit, match):
    ckpt = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ours.items()}
    edit(ckpt)
    torch.save(ckpt, tmp_path / "ours.pt")
    refused(tmp_path / "ours.pt", match, seconds=30)


def test_zip_tampering(tmp_path):
    src = fixture_path("main-csp-tiny.pt")
    data = bytearray(src.read_bytes())
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) - 100])
    refused(tmp_path / "trunc.pt", r"unreadable checkpoint", cfg=main_cfg("main-csp-tiny"))
    with zipfile.ZipFile(src) as z:  # a byte of a storage record: its CRC no longer matches
        info = z.getinfo(next(n for n in z.namelist() if n.endswith("/data/0")))
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + 2] ^= 0xFF
    (tmp_path / "crc.pt").write_bytes(data)
    refused(tmp_path / "crc.pt", r"unreadable checkpoint .*Bad CRC-32", cfg=main_cfg("main-csp-tiny"))
    body = PICKLE(D((S("model"), NONE)))
    for name, field, value, match in [("encrypted", 8, b"\x01\x00", r"encrypted"),
                                      ("bzip2", 10, b"\x0c\x00", r"compression method 12")]:
        p = torch_zip(tmp_path / f"{name}.pt", body)
        raw = bytearray(p.read_bytes())
        at = raw.find(b"PK\x01\x02") + field  # the first directory entry (data.pkl): flags / method
        raw[at:at + 2] = value
        p.write_bytes(bytes(raw))
        refused(p, match)
    refused(torch_zip(tmp_path / "big.pt", body, extra={"byteorder": b"big"}), r"only little-endian")
    refused(torch_zip(tmp_path / "ver.pt", body, extra={"version": b"x" * 100}), r"record version is not a number")
    refused(torch_zip(tmp_path / "small.pt", body, extra={"version": b"3" * 5000}), r"over the 4,096-byte limit")
    (tmp_path / "empty.pt").write_bytes(b"")
    refused(tmp_path / "empty.pt", r"not a PyTorch checkpoint")
    (tmp_path / "pk.pt").write_bytes(b"PK\x03\x04" + bytes(100))
    refused(tmp_path / "pk.pt", r"unreadable checkpoint")
    refused(tmp_path, r"cannot read \(a folder, not a regular file\)")  # a folder named as the checkpoint


def test_limits_bound_deflated_records_relative_to_their_size(tmp_path):
    """A deflated record may expand 100x or to 1 MiB; torch itself stores records uncompressed."""
    body = PICKLE(D((S("model"), NONE)) + b"N0" * 100_000)  # compresses well beyond 100x but stays < 1 MiB
    p = torch_zip(tmp_path / "deflated.pt", body, deflate=("data.pkl",))
    refused(p, r"'model' entry is a NoneType")  # read normally


# --- through the CLI -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["torchscript.pt", "punycode.pt", "bytearray-12e9.pt", "zip-bomb.pt",
                                  "fp16-stride0.pt", "standin-list-state.pt", "os-system.pt"])
def test_cli_prints_one_error_line(name, capsys):
    path = CORPUS / name
    assert cli_main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert TORCHSCRIPT_MARKER not in out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), err


# --- the regression corpus -------------------------------------------------------------------------------

def test_corpus_is_refused():
    expected = json.loads((CORPUS / "expected.json").read_text())
    assert sorted(expected) == sorted(corpus_cases())
    for name, pattern in expected.items():
        assert (CORPUS / name).stat().st_size < 50_000
        refused(CORPUS / name, pattern)
    assert not Path("YOLOR_DEPLOY_PWNED").exists()


# --- legitimate files: read exactly as torch reads them -----------------------------------------------------

def _same(a, b, where="") -> None:
    if isinstance(a, torch.Tensor):
        assert type(b) is type(a) and b.dtype == a.dtype and b.shape == a.shape, where
        assert b.stride() == a.stride() and b.storage_offset() == a.storage_offset(), where
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert type(b) is np.ndarray and a.dtype == b.dtype and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert type(b) is type(a) and list(a) == list(b), where
        assert getattr(a, "_metadata", None) == getattr(b, "_metadata", None), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert type(b) is type(a) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert type(b) is type(a) and (a == b or (a != a and b != b)), (where, a, b)


def _kitchen_sink() -> dict:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).state_dict()
    return {
        "epoch": -1, "best_fitness": np.array([0.5]), "fitness": np.float64(0.25), "f32": np.float32(1.5),
        "i64": np.int64(7), "arr": np.arange(6, dtype=np.int32).reshape(2, 3), "bytes": b"\x00\xffabc", "empty": b"",
        "ba": bytearray(b"xy"), "c": 1 + 2j, "s": {"a", "b"}, "fs": frozenset([1, 2]), "none": None,
        "od": OrderedDict(a=1), "sd": sd, "t": base, "view": base[1:3, 2:], "tt": base.t(), "step": base[:, ::2],
        "scalar": torch.tensor(3.5), "empty_t": torch.empty(0, 5), "h": base.half(), "bf": base.bfloat16(),
        "b": base > 3, "i8": base.to(torch.int8), "u8": base.to(torch.uint8), "i16": base.to(torch.int16),
        "i32": base.int(), "f64": base.double(), "p": torch.nn.Parameter(base.clone()),
        "nested": [{"x": (1, 2.5, "s", True)}], "big": 1 << 100, "opt": {"state": {0: {"m": base[0]}},
                                                                          "param_groups": [{"params": [0], "lr": 0.1}]},
    }


@pytest.mark.parametrize("how", ["zip", "zip-protocol-4", "zip-protocol-5", "legacy"])
def test_legitimate_objects_read_as_torch_reads_them(tmp_path, how):
    obj = _kitchen_sink()
    p = tmp_path / f"{how}.pt"
    kw = {"legacy": {"_use_new_zipfile_serialization": False}, "zip-protocol-4": {"pickle_protocol": 4},
          "zip-protocol-5": {"pickle_protocol": 5}}.get(how, {})
    torch.save(obj, p, **kw)
    ours = safe_torch_load(p)
    _same(torch.load(p, weights_only=False), ours)
    assert ours["view"].untyped_storage().data_ptr() == ours["t"].untyped_storage().data_ptr()  # still shared


def test_main_fixtures_read_as_torch_reads_them():
    for name in ("main-csp-tiny", "main-p6-tiny"):
        _same(torch.load(fixture_path(f"{name}.pt"), weights_only=False), safe_torch_load(fixture_path(f"{name}.pt")))
