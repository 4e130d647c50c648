"""Faults while writing: disk full, read-only targets, writers killed between renames. Nothing partial at a
target path, the previous good model survives, one-line errors with exit status 2."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from helpers.fixtures import fixture_path
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.cli.main import main
from yolor_deploy.errors import ExportError
from yolor_deploy.export import export_onnx
from yolor_deploy.formats.openvino_ir import prev_paths
from yolor_deploy.fs import host_tag
from yolor_deploy.runtime import Detector

CKPT = fixture_path("trained/shapes-ssss-w025.pt")


@pytest.fixture(scope="module")
def model():
    return load_checkpoint(CKPT)


def _fail(err: int):
    def raise_(*a, **k):
        raise OSError(err, os.strerror(err))
    return raise_


def _full_disk(monkeypatch, err: int = errno.ENOSPC) -> None:
    """Every file write gets half its bytes onto the disk, then fails with `err` (as a full disk does)."""
    real = Path.write_bytes

    def half_then_fail(self, data):
        real(self, bytes(data)[: len(data) // 2])
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(Path, "write_bytes", half_then_fail)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_model_write_failure_is_one_line_and_leaves_nothing(model, tmp_path, monkeypatch, err):
    out = tmp_path / "m.onnx"
    _full_disk(monkeypatch, err)
    with pytest.raises(ExportError, match=f"m.onnx: cannot write \\({os.strerror(err)}\\)"):
        export_onnx(model, out, imgsz=(256, 256), verify=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_disk_full_exit_2(tmp_path, monkeypatch, capsys):
    _full_disk(monkeypatch)
    assert main(["export", str(CKPT), "--imgsz", "256", "--no-verify", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "No space left on device" in err[0]
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*"))


def test_report_failure_keeps_the_model(model, tmp_path, monkeypatch):
    import yolor_deploy.verify.verify as verify

    monkeypatch.setattr(verify.VerifyReport, "write_json", _fail(errno.ENOSPC))
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"r.json: cannot write the report .*; the model was saved at .*m.onnx"):
        export_onnx(model, out, imgsz=(256, 256), report=str(tmp_path / "r.json"))
    assert onnx.load(str(out)).graph.output[0].name == "output"


def test_interrupted_ir_overwrite_is_detected_and_the_old_pair_survives(model, tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    first = export_onnx(model, out, imgsz=(256, 256), openvino=True, verify=False)
    xml, bin_ = first.openvino_paths
    x = np.random.default_rng(0).integers(0, 255, (200, 240, 3), dtype=np.uint8)
    before = Detector(xml)(x)[0]
    real_replace = os.replace
    calls = []

    def killed_after_the_bin(src, dst):  # the writer dies between the .bin and the .xml renames
        calls.append(dst)
        if str(dst).endswith(".xml"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    other = load_checkpoint(CKPT)
    with __import__("torch").no_grad():
        for p in other.parameters():
            p.mul_(1.01)  # same architecture, other weights: only the recorded hash tells the pair apart
    monkeypatch.setattr(os, "replace", killed_after_the_bin)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(other, out, imgsz=(256, 256), openvino=True, verify=False)
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.warns(RuntimeWarning, match=r"m.xml: its weights file m.bin belongs to another model .*loading the "
                                            r"intact previous model m.prev.xml"):
        fallback = Detector(xml)(x)[0]  # the path still works: the intact previous pair is loaded
    np.testing.assert_allclose(fallback.xyxy, before.xyxy, atol=1e-3)
    prev_xml, _ = prev_paths(out)
    again = Detector(prev_xml)(x)[0]
    np.testing.assert_allclose(again.xyxy, before.xyxy, atol=1e-3)
    # the next export into the same place cleans up and leaves one consistent pair
    export_onnx(model, out, imgsz=(256, 256), openvino=True, verify=False)
    assert len(Detector(xml)(x)[0]) == len(before)
    assert not prev_xml.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stale_temp_files_of_killed_writers_are_removed(model, tmp_path):
    dead = 2**22 + 12345  # no such process
    stale = tmp_path / f".m.{host_tag()}.{dead}.tmp.onnx"
    stale.write_bytes(b"half a model")
    stale_dir = tmp_path / f".m.{host_tag()}.{dead}.abcd.ir.tmp"
    stale_dir.mkdir()
    export_onnx(model, tmp_path / "m.onnx", imgsz=(256, 256), openvino=True, verify=False)
    assert not stale.exists() and not stale_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.onnx", "m.xml"]
