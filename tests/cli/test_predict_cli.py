"""`yolor-deploy predict` through the dispatcher: outputs, video, and each kind of bad input."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import cv2
import pytest

from helpers.runtime_data import horses, write_sizes_folder, write_video
from helpers.runtime_models import model_path
from yolor_deploy.cli.main import main


def predict(*args) -> int:
    return main(["predict", *map(str, args)])


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob(".*") if ".tmp" in p.name]


def test_images_folder_all_outputs(tmp_path, capsys):
    files = write_sizes_folder(tmp_path / "imgs")
    out = tmp_path / "out"
    assert predict(model_path("dynamic"), tmp_path / "imgs", "--imgsz", 320, "--save-dir", out,
                   "--save-json", "--save-txt", "--save-conf", "--batch", 2) == 0
    captured = capsys.readouterr()
    assert "predict summary" in captured.out and "detections" in captured.out and f"results saved to {out}" in captured.out
    assert captured.err == ""
    lines = [ln for ln in captured.out.splitlines() if ln.startswith("image ")]
    assert len(lines) == len(files) and lines[0].startswith(f"image 1/{len(files)} ") and lines[-1].endswith(" ms")
    assert all(re.search(r": (no detections|\d+ (circle|square|triangle)), ", ln) for ln in lines)
    assert predict(model_path("dynamic"), tmp_path / "imgs", "--imgsz", 320, "--save-dir", tmp_path / "q", "-q") == 0
    assert not [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("image ")]
    for p in files.values():
        assert cv2.imread(str(out / p.name)) is not None, p.name  # annotated, same name and suffix
        assert (out / "labels" / f"{p.stem}.txt").exists()
    coco = json.loads((out / "predictions.json").read_text())
    assert coco and set(coco[0]) == {"image_id", "category_id", "bbox", "score"}
    n_per_class = Counter(e["category_id"] for e in coco)
    assert f"detections       │ {sum(n_per_class.values())}".replace(" ", "") in captured.out.replace(" ", "")
    assert {e["image_id"] for e in coco} <= {p.stem for p in files.values()}
    n_lines = sum(len((out / "labels" / f"{p.stem}.txt").read_text().splitlines()) for p in files.values())
    assert n_lines == len(coco)
    assert all(len(line.split()) == 6 for line in (out / "labels" / "gray.txt").read_text().splitlines())
    assert no_temp_files(out)


def test_video_in_annotated_video_and_per_frame_json_out(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.avi", n=6, size=(240, 320), fps=5)
    out = tmp_path / "out"
    assert predict(model_path("static"), clip, "--save-dir", out, "--save-txt") == 0
    doc = json.loads((out / "clip.json").read_text())
    assert (doc["width"], doc["height"], doc["fps"]) == (320, 240, 5.0)
    assert [f["frame"] for f in doc["frames"]] == list(range(6))
    assert sum(len(f["detections"]) for f in doc["frames"]) > 0
    assert set(doc["frames"][0]["detections"][0]) == {"class_id", "class_name", "score", "xyxy"}
    cap = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    assert (out / "labels" / "clip_5.txt").exists()
    assert no_temp_files(out)
    assert "6" in capsys.readouterr().out


def test_mixed_images_and_video_in_one_run(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "a.jpg"), horses())
    write_video(tmp_path / "a.avi", n=2)
    out = tmp_path / "out"
    assert predict(model_path("dynamic"), tmp_path, "--save-dir", out, "--save-json") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a.json", "a.mp4", "a_2.jpg", "predictions.json"]  # a.avi first (sorted); stems kept unique


def test_non_image_file_is_an_error(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert predict(model_path("static"), notes, "--save-dir", tmp_path / "o") == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {notes}: not an image or video file by its suffix (images bmp ")
    assert "; videos mp4 avi" in line and line.endswith(")")


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_empty_or_missing_folder_is_an_error(tmp_path, capsys, what):
    folder = tmp_path / "imgs"
    if what == "empty":
        folder.mkdir()
        (folder / "readme.md").write_text("no images here")
    assert predict(model_path("static"), folder, "--save-dir", tmp_path / "o") == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {folder}: ")
    assert ("folder holds no images or videos" if what == "empty" else "no such file or folder") in line
    assert not (tmp_path / "o").exists()  # nothing written on a bad command line


def test_corrupt_image_among_good_ones_is_skipped(tmp_path, capsys):
    imgs = tmp_path / "imgs"
    write_sizes_folder(imgs)
    (imgs / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated JPEG")
    out = tmp_path / "out"
    assert predict(model_path("static"), imgs, "--save-dir", out, "--save-txt") == 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"warning: {imgs / 'corrupt.jpg'}: cannot decode image (JPEG: cannot read "
                                        "the image size from the header: format refused); skipped"]
    assert len(list((out / "labels").glob("*.txt"))) == 6 and not (out / "corrupt.jpg").exists()


def test_only_unreadable_inputs_is_an_error(tmp_path, capsys):
    (tmp_path / "bad.png").write_bytes(b"nope")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 500)
    assert predict(model_path("static"), tmp_path / "bad.png", tmp_path / "broken.mp4", "--save-dir", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "warning: " in err and "broken.mp4: cannot read video (corrupt, empty or unsupported codec); skipped" in err
    assert error_line(err) == "error: no readable image or video frame among 2 input(s)"


def test_unreadable_video_among_images_is_skipped(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "ok.jpg"), horses())
    (tmp_path / "broken.avi").write_bytes(b"RIFF....AVI garbage")
    assert predict(model_path("static"), tmp_path, "--save-dir", tmp_path / "o") == 0
    assert "broken.avi: cannot read video" in capsys.readouterr().err
    assert (tmp_path / "o" / "ok.jpg").exists() and not (tmp_path / "o" / "broken.json").exists()


def test_model_without_metadata_warns_and_runs(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "h.jpg"), horses())
    assert predict(model_path("nometa"), tmp_path / "h.jpg", "--save-dir", tmp_path / "o", "--save-json") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "no yolor_deploy metadata; assuming class names 0..2" in err[0]
    assert json.loads((tmp_path / "o" / "predictions.json").read_text())


def test_bad_model_and_provider_are_one_line_errors(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "h.jpg"), horses())
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"garbage")
    assert predict(junk, tmp_path / "h.jpg", "--save-dir", tmp_path / "o") == 2
    assert error_line(capsys.readouterr().err).startswith(f"error: {junk}: cannot load ONNX model")
    assert predict(model_path("static"), tmp_path / "h.jpg", "--providers", "tensorrt", "--save-dir", tmp_path / "o") == 2
    assert "'tensorrt' is not available in this onnxruntime build; available:" in error_line(capsys.readouterr().err)


def test_classes_filter_no_save_img_and_default_save_dir(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite(str(tmp_path / "h.jpg"), horses())
    for _ in range(2):
        assert predict(model_path("static"), "h.jpg", "--classes", "1", "--save-json", "--no-save-img") == 0
    runs = tmp_path / "runs" / "predict"
    assert sorted(p.name for p in runs.iterdir()) == ["exp", "exp2"]
    assert sorted(p.name for p in (runs / "exp").iterdir()) == ["predictions.json"]
    coco = json.loads((runs / "exp" / "predictions.json").read_text())
    assert coco and {e["category_id"] for e in coco} == {1}
