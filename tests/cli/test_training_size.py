"""Sizes that never surprise: the training size read from where the files say it, used by default by
`val`, `predict` and `export` on a checkpoint, and one warning line when nothing says it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yolor_deploy import assets
from yolor_deploy.checkpoint import load_checkpoint, save_checkpoint
from yolor_deploy.checkpoint.train_size import MAX_OPT_BYTES, training_size
from yolor_deploy.cli.main import main
from yolor_deploy.errors import CheckpointError
from yolor_deploy.runtime import Detector

VAL = ["--images", str(assets.val_images()), "--labels", str(assets.val_labels())]


@pytest.fixture(scope="module")
def bare_checkpoint(tmp_path_factory) -> Path:
    """The bundled trained checkpoint alone in a folder: no opt.yaml anywhere near it."""
    folder = tmp_path_factory.mktemp("bare") / "run" / "weights"
    folder.mkdir(parents=True)
    return Path(shutil.copy(assets.trained_checkpoint(), folder / "best.pt"))


def test_opt_yaml_beside_or_above_the_weights(tmp_path, bare_checkpoint):
    assert training_size(bare_checkpoint) is None
    ck = tmp_path / "exp" / "weights" / "best.pt"
    ck.parent.mkdir(parents=True)
    shutil.copy(bare_checkpoint, ck)
    (tmp_path / "exp" / "opt.yaml").write_text("weights: ''\nimg_size: [416, 640]\nbatch_size: 16\n")
    assert training_size(ck) == ((416, 416), f"img_size in {tmp_path / 'exp' / 'opt.yaml'}")
    (ck.parent / "opt.yaml").write_text("img_size: 288\n")  # the nearer one wins
    assert training_size(ck)[0] == (288, 288)
    assert training_size(ck, recorded=[320, 256]) == ((320, 256), "recorded in the checkpoint")


@pytest.mark.parametrize("text", [
    "img_size: [5, 5]", "img_size: ['a', 1]", "img_size: [99999]", "img_size: {a: 1}", "[1, 2]",
    "img_size: !!python/object/apply:os.system ['echo hi']", "a: [" * 200, "img_size: 320\n" + "#" * MAX_OPT_BYTES,
])
def test_hostile_or_useless_opt_yaml_is_ignored(tmp_path, bare_checkpoint, text):
    ck = Path(shutil.copy(bare_checkpoint, tmp_path / "best.pt"))
    (tmp_path / "opt.yaml").write_text(text)
    assert training_size(ck) is None


def test_our_checkpoint_records_the_size(tmp_path):
    model = load_checkpoint(assets.trained_checkpoint())
    assert model.train_imgsz == (256, 256) and model.train_imgsz_source.endswith("opt.yaml")
    ours = save_checkpoint(model, tmp_path / "ours.pt")
    again = load_checkpoint(ours)
    assert again.train_imgsz == (256, 256) and again.train_imgsz_source == "recorded in the checkpoint"
    assert Detector(ours).imgsz == (256, 256)
    save_checkpoint(model, tmp_path / "bad.pt", imgsz=(256, 256))
    import torch

    data = torch.load(tmp_path / "bad.pt", weights_only=True)
    data["imgsz"] = "big"
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad.pt: 'imgsz' is big, not a size"):
        load_checkpoint(tmp_path / "bad.pt")


def test_val_uses_the_training_size_and_says_so_when_unknown(bare_checkpoint, capsys):
    assert main(["val", str(assets.trained_checkpoint()), *VAL]) == 0
    out, err = capsys.readouterr()
    assert "input 256x256" in out and "training size" not in err
    map50 = float(out.split("mAP@0.5 ")[1].split()[0])
    assert map50 > 0.9, out
    assert main(["val", str(bare_checkpoint), *VAL]) == 0
    out, err = capsys.readouterr()
    assert "input 640x640" in out
    assert [ln for ln in err.splitlines() if ln.strip()] == [
        f"warning: {bare_checkpoint}: the model does not record its training size; running at 640 "
        f"(set --imgsz, imgsz= in Python)"]


def test_export_defaults_to_the_training_size(tmp_path, capsys):
    ck = Path(shutil.copy(assets.trained_checkpoint(), tmp_path / "shapes.pt"))
    (tmp_path / "opt.yaml").write_text("img_size: [256, 256]\n")
    assert main(["export", str(ck)]) == 0
    out = capsys.readouterr().out
    assert f"size 256x256: the training size (img_size in {tmp_path / 'opt.yaml'})" in " ".join(out.split())
    assert (tmp_path / "shapes-256x256.onnx").is_file()
    assert Detector(tmp_path / "shapes-256x256.onnx").imgsz == (256, 256)


def test_val_shows_a_progress_bar_on_a_terminal(tmp_path):
    # 4 of the labelled images: the bar is what is checked, not the mAP (two CLI processes, each loads torch)
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir(), labels.mkdir()
    for p in sorted(assets.val_images().iterdir())[:4]:
        shutil.copy(p, images / p.name)
        shutil.copy(assets.val_labels() / f"{p.stem}.txt", labels / f"{p.stem}.txt")
    few = ["--images", str(images), "--labels", str(labels)]
    env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "120"}
    r = subprocess.run([sys.executable, "-m", "yolor_deploy.cli.main", "val", str(assets.trained_checkpoint()),
                        *few], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "images/s" in r.stderr and "4/4" in r.stderr, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-m", "yolor_deploy.cli.main", "val", str(assets.trained_checkpoint()),
                        *few], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "", r.stderr  # a pipe gets no bar
