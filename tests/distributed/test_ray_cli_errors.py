"""`predict` engine options refused in one line before any work (no Ray started)."""
from __future__ import annotations

import pytest

from helpers.runtime_models import model_path
from yolor_deploy.assets import val_images
from yolor_deploy.cli.main import main


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--ray-address", "auto"], "error: --ray-address: only with --engine ray"),
    (["--num-workers", "2"], "error: --num-workers: only with --engine ray"),
    (["--engine", "ray", "--num-workers", "0"], "error: --num-workers 0: must be at least 1"),
    (["--engine", "ray", "--shard-size", "0"], "error: --shard-size 0: must be at least 1"),
])
def test_engine_options_are_checked_first(args, message, tmp_path, capsys):
    rc = main(["predict", str(model_path("dynamic")), str(val_images()), "--save-dir", str(tmp_path / "out"), *args])
    assert rc == 2 and error_line(capsys.readouterr().err) == message
    assert not (tmp_path / "out").exists()


def test_ray_engine_missing_source_is_one_line(tmp_path, capsys):
    rc = main(["predict", str(model_path("dynamic")), str(tmp_path / "nope"), "--engine", "ray",
               "--save-dir", str(tmp_path / "out")])
    assert rc == 2 and error_line(capsys.readouterr().err) == f"error: {tmp_path / 'nope'}: no such file or folder"
