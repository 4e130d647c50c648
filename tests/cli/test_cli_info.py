"""`yolor-deploy info`: real output on fixtures, one-line errors with non-zero exit on bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers.fixtures import fixture_path
from yolor_deploy.cli.main import main


def test_info_paper_fixture_json(capsys):
    assert main(["info", str(fixture_path("paper-p6-tiny-nc3.pt")), "--json", "--imgsz", "320"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["branch"] == "paper" and info["names"] == ["cat", "dog", "person"]
    assert info["strides"] == [8, 16, 32, 64] and info["parameters"] == 1_534_848
    assert info["anchors"][0] == [[19, 27], [44, 40], [38, 94]] and info["gflops"] > 0


def test_info_main_fixture_table(capsys):
    assert main(["info", str(fixture_path("main-csp-tiny.pt")), "--cfg", str(fixture_path("main-csp-tiny.cfg"))]) == 0
    out = capsys.readouterr().out
    assert "main" in out and "885,798" in out and "8, 16, 32" in out


def test_info_registered_variant_gflops(capsys):
    assert main(["info", "yolor-p6", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # upstream.md: 37.27 M parameters, 81.3 GFLOPs (40.7 GMACs) at 640
    assert info["parameters"] == 37_270_264 and abs(info["gflops"] - 81.3) < 0.5


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _bad_files(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, evil)
    trunc = tmp_path / "trunc.pt"
    data = fixture_path("main-csp-tiny.pt").read_bytes()
    trunc.write_bytes(data[: len(data) // 3])
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(1).bytes(10_000))
    unknown = tmp_path / "unknown.cfg"
    text = fixture_path("main-csp-tiny.cfg").read_text()
    unknown.write_text(text.replace("[upsample]", "[teleport]", 1))
    main_pt = str(fixture_path("main-csp-tiny.pt"))
    return [
        ([str(evil)], "refusing global"),
        ([str(trunc)], "unreadable checkpoint"),
        ([str(noise)], "not a PyTorch checkpoint"),
        ([main_pt, "--cfg", str(fixture_path("main-p6-tiny.cfg"))], "weights do not fit cfg"),
        ([main_pt, "--cfg", str(unknown)], "teleport"),
        ([main_pt, "--cfg", "yolor_p9"], "not a known variant"),
        ([str(tmp_path / "missing.pt")], "file not found"),
    ]


def test_info_bad_inputs_one_line_errors(tmp_path, capsys):
    for argv, msg in _bad_files(tmp_path):
        assert main(["info", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and "\n" not in err, err


def test_console_script_exit_code(tmp_path):
    """The installed entry point, in a fresh process: exit status 2 and one stderr line."""
    bad = tmp_path / "noise.pt"
    bad.write_bytes(b"\x00" * 100)
    exe = os.path.join(os.path.dirname(sys.executable), "yolor-deploy")
    r = subprocess.run([exe, "info", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "noise.pt" in r.stderr


@pytest.mark.parametrize("cmd", ["demo", "info", "export", "diff", "predict", "bench", "val", "quantize", "serve"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "example" in capsys.readouterr().out


def test_unexpected_errors_are_one_line(monkeypatch, capsys):
    import yolor_deploy.cli.info as info

    def boom(args):
        raise ValueError("something nobody expected\nsecond line")

    monkeypatch.setattr(info, "run", boom)
    monkeypatch.delenv("YOLOR_DEBUG", raising=False)
    assert main(["info", "x.onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unexpected ValueError: something nobody expected (set YOLOR_DEBUG=1 for the traceback)"]
    monkeypatch.setenv("YOLOR_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["info", "x.onnx"])


def test_info_json_into_a_closed_pipe_is_quiet(monkeypatch, capsys):
    """`info --json | head`: the reader goes away; no BrokenPipeError traceback, exit 0."""
    import io

    from helpers.runtime_models import model_path

    class ClosedPipe(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["info", str(model_path("static")), "--json"]) == 0


@pytest.mark.parametrize("argv,want", [
    (["predict", "m.onnx", "x.jpg", "--save-jsn"], "yolor-deploy predict: error: unrecognized arguments: --save-jsn (did you mean --save-json?)"),
    (["exprt", "x.pt"], "(did you mean export?)"),
])
def test_typos_get_a_suggestion_from_the_right_command(capsys, argv, want):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and want in capsys.readouterr().err


@pytest.mark.parametrize("kw,name", [
    ({}, "m-320x320.onnx"), ({"dynamic": True}, "m-320x320-dynamic.onnx"), ({"nms": "onnx"}, "m-320x320-nms.onnx"),
    ({"nms": "trt", "half": True}, "m-320x320-nms-trt-fp16.onnx"),
    ({"dynamic": True, "nms": "onnx", "half": True}, "m-320x320-dynamic-nms-fp16.onnx"),
])
def test_export_names_follow_one_scheme(kw, name):
    from yolor_deploy.cli.export import default_output

    assert default_output("runs/m.pt", (320, 320), kw.pop("nms", "none"), **kw).name == name
