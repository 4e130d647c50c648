"""A bug of ours is told apart from a bad file: one line naming the file that says it is a bug in yolor-deploy,
an `InternalError` (not a `CheckpointError`, so the fuzz and hostile tests fail on it), the original chained.
Faults are injected into the real reader; the files are real (a bundled upstream checkpoint, crafted pickles)."""
from __future__ import annotations

import pytest

from helpers.hostile_checkpoints import CALL, EMPTY_TUPLE, NONE, PICKLE, REDUCE, D, G, S, torch_zip
from yolor_deploy.assets import trained_checkpoint
from yolor_deploy.checkpoint import allowlist, archive, load, load_checkpoint
from yolor_deploy.cli.main import main as cli_main
from yolor_deploy.errors import CheckpointError, InternalError


def _internal(path, cause: type[BaseException], doing: str) -> InternalError:
    with pytest.raises(InternalError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert not isinstance(e.value, CheckpointError) and e.value.internal
    assert "\n" not in msg and msg.startswith(f"{path}: internal error in yolor-deploy while {doing} ("), msg
    assert msg.endswith("this is a bug in yolor-deploy, not in the file: please report it"), msg
    assert type(e.value.__cause__) is cause
    return e.value


def test_a_bug_in_the_archive_reader_is_internal(monkeypatch, capsys):
    def buggy(zf, size):
        return zf.no_such_attribute  # an AttributeError of ours

    monkeypatch.setattr(archive, "_read_open_zip", buggy)
    path = trained_checkpoint()
    _internal(path, AttributeError, "reading the checkpoint")
    assert cli_main(["info", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: internal error in yolor-deploy"), err


def test_a_bug_in_a_checked_constructor_is_internal(monkeypatch, tmp_path):
    def buggy(ctx, *args):
        return args[5]  # an IndexError of ours, raised inside the pickle machine

    monkeypatch.setitem(allowlist.SAFE, ("collections", "OrderedDict"),
                        allowlist.SafeCall("collections.OrderedDict", buggy))
    path = torch_zip(tmp_path / "m.pt", PICKLE(D((S("model"), CALL(G("collections", "OrderedDict"))))))
    _internal(path, IndexError, "reading the checkpoint")


def test_a_bug_while_building_the_model_is_internal(monkeypatch):
    def buggy(obj, path, cfg):
        return {}["no such key"]

    monkeypatch.setattr(load, "_load_paper", buggy)
    _internal(trained_checkpoint(), KeyError, "building the model from the checkpoint")


@pytest.mark.parametrize("body,match", [
    (REDUCE, r"unpickling stack underflow \(0 of 2 items\)"),  # our REDUCE on an empty stack
    (b"0", r"unpickling stack underflow or truncated opcode"),  # the stdlib's POP on an empty stack and mark
    (EMPTY_TUPLE + b"q", r"unpickling stack underflow or truncated opcode"),  # BINPUT without its index byte
    (NONE + b"t", r"unpickling stack underflow or truncated opcode"),  # TUPLE without a MARK
])
def test_a_malformed_pickle_is_the_files_fault(tmp_path, body, match):
    """The pure-Python pickle machine raises IndexError for a file's stack underflow: a CheckpointError."""
    path = torch_zip(tmp_path / "m.pt", PICKLE(body) if body != EMPTY_TUPLE + b"q" else b"\x80\x02" + body)
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint(path)
    assert not e.value.internal and str(e.value).startswith(f"{path}: unreadable checkpoint")
