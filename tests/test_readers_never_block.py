"""Readers never block (issue 20): a FIFO (or a device) given as any kind of input is refused before it is
opened, in one line naming it. Each call runs in a thread with a deadline, so a regression fails instead of
hanging the suite (a reader blocked on a FIFO waits for a writer forever)."""
from __future__ import annotations

import os
import shutil
import threading

import pytest

from helpers.trained_onnx import trained_onnx
from yolor_deploy.cfg.darknet import parse_darknet_cfg
from yolor_deploy.cfg.yaml_cfg import parse_yaml_cfg
from yolor_deploy.checkpoint import load_checkpoint
from yolor_deploy.cli.main import main
from yolor_deploy.distributed.uri import read_uri_bytes
from yolor_deploy.errors import YolorDeployError
from yolor_deploy.fs import NotRegularFileError, check_regular, open_regular
from yolor_deploy.runtime import Detector, VideoReader, read_image, read_report_hint, resolve_sources

DEADLINE_S = 2.0


def finishes(call):
    """The exception `call()` raised (None if it returned), failing the test when it runs past the deadline."""
    out: dict = {}

    def run():
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(DEADLINE_S)
    if t.is_alive():
        pytest.fail(f"still blocked after {DEADLINE_S} s")
    return out.get("error")


@pytest.fixture
def fifo(tmp_path):
    def make(name: str):
        path = tmp_path / name
        os.mkfifo(path)
        return path

    yield make
    for p in tmp_path.iterdir():  # after a regression: a reader stuck in open() is released by a writer
        if p.is_fifo():
            os.close(os.open(p, os.O_RDWR | os.O_NONBLOCK))  # (O_RDWR never blocks on Linux)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    shutil.copy(trained_onnx(), path)  # exported before any deadline runs
    return path


CASES = {
    "image file": ("a.jpg", lambda p, m: read_image(p)),
    "image named as a source": ("a.jpg", lambda p, m: resolve_sources([p])),
    "video": ("a.mp4", lambda p, m: VideoReader(p)),
    "uri": ("a.jpg", lambda p, m: read_uri_bytes(f"file://{p}", 1 << 20)),
    "onnx model": ("m.onnx", lambda p, m: Detector(p)),
    "IR model": ("m.xml", lambda p, m: Detector(p)),
    "checkpoint": ("m.pt", lambda p, m: load_checkpoint(p)),
    "yaml config": ("c.yaml", lambda p, m: parse_yaml_cfg(p)),
    "darknet config": ("c.cfg", lambda p, m: parse_darknet_cfg(p)),
    "report.json": ("report.json", lambda p, m: read_report_hint(p, m)),
}


@pytest.mark.parametrize("kind", CASES)
def test_a_fifo_is_refused_before_it_is_opened(kind, fifo, model):
    name, call = CASES[kind]
    path = fifo(name)
    error = finishes(lambda: call(path, model))
    assert isinstance(error, YolorDeployError), repr(error)
    message = str(error)
    assert "\n" not in message and str(path) in message and "FIFO (named pipe)" in message, message


def test_folders_and_globs_skip_fifos(fifo, tmp_path):
    fifo("a.jpg")
    for spec in (tmp_path, tmp_path / "*.jpg"):
        error = finishes(lambda s=spec: resolve_sources([s]))
        assert isinstance(error, YolorDeployError) and "no images or videos" in str(error), repr(error)


def test_an_ir_whose_bin_is_a_fifo_is_refused(fifo, tmp_path):
    (tmp_path / "m.xml").write_text("<net/>")
    bin_ = fifo("m.bin")
    error = finishes(lambda: Detector(tmp_path / "m.xml"))
    assert isinstance(error, YolorDeployError) and f"{bin_}: cannot read the model (a FIFO" in str(error), repr(error)


def test_the_cli_prints_one_line_for_a_fifo_source(fifo, tmp_path, model, capsys):
    path = fifo("a.jpg")
    rc = []
    assert finishes(lambda: rc.append(main(["predict", str(model), str(path), "--save-dir",
                                            str(tmp_path / "o")]))) is None
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == [2] and lines == [f"error: {path}: a FIFO (named pipe), not a regular file: not read"], lines


def test_devices_are_refused_and_the_helper_is_race_free(fifo):
    with pytest.raises(NotRegularFileError, match="/dev/null: a character device, not a regular file"):
        check_regular("/dev/null")
    error = finishes(lambda: read_image("/dev/zero"))  # reading it would never end
    assert isinstance(error, YolorDeployError) and "character device" in str(error), repr(error)
    path = fifo("x")
    error = finishes(lambda: open_regular(path))
    assert isinstance(error, NotRegularFileError), repr(error)
