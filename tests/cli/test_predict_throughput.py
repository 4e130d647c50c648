"""`predict FOLDER --mode throughput` writes the same labels as latency mode, in the same order of lines."""
from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.trained_onnx import trained_onnx

from yolor_deploy.cli.main import main

IMAGES = sorted(Path("/work/shared/fixtures/trained/images").glob("*.jpg"))[:10]


def _run(folder: Path, out: Path, mode: str, capsys) -> list[str]:
    assert main(["predict", str(trained_onnx()), str(folder), "--save-dir", str(out), "--save-txt",
                 "--save-conf", "--no-save-img", "--mode", mode]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("image ")]
    return lines


def test_throughput_mode_same_labels_and_order(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in IMAGES:
        shutil.copy(p, folder / p.name)
    lat = _run(folder, tmp_path / "lat", "latency", capsys)
    thr = _run(folder, tmp_path / "thr", "throughput", capsys)
    assert len(lat) == len(IMAGES) and [ln.split(":")[0] for ln in thr] == [ln.split(":")[0] for ln in lat]
    n = 0
    for p in IMAGES:
        a = (tmp_path / "lat" / "labels" / f"{p.stem}.txt").read_text().split()
        b = (tmp_path / "thr" / "labels" / f"{p.stem}.txt").read_text().split()
        assert len(a) == len(b)
        assert all(abs(float(x) - float(y)) < 2e-3 for x, y in zip(a, b))  # 6-decimal text, fp32 noise floor
        n += len(a)
    assert n > 0
