"""Sources (files, folders, globs, odd image formats, videos) and result formats."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from helpers.runtime_data import horses, write_sizes_folder, write_video
from yolor_deploy.errors import InputError
from yolor_deploy.runtime import Detections, VideoReader, read_image, resolve_sources
from yolor_deploy.runtime.inputs.sources import iter_frames, to_bgr8
from yolor_deploy.runtime.results.detections import COCO80_TO_91, coco_names


def test_odd_image_formats_become_8bit_bgr(tmp_path):
    files = write_sizes_folder(tmp_path)
    h = horses()
    for name, path in files.items():
        img = read_image(path)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
    np.testing.assert_array_equal(read_image(files["png16"]), h)  # (v * 257) >> 8 == v
    np.testing.assert_array_equal(read_image(files["rgba"]), h)  # alpha dropped, as cv2.imread does
    gray = read_image(files["gray"])
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert read_image(files["tiny"]).shape == (8, 12, 3)
    assert to_bgr8(np.zeros((4, 5), np.uint16)).shape == (4, 5, 3)
    assert to_bgr8(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(InputError, match="unsupported pixel type float32"):
        to_bgr8(np.zeros((4, 5, 3), np.float32), "arr")


def test_unreadable_images(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is text, not a JPEG" * 20)
    with pytest.raises(InputError, match=r"bad.jpg: cannot decode image \(corrupt or not an image\)"):
        read_image(bad)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.png: empty file"):
        read_image(empty)
    truncated = tmp_path / "trunc.jpg"
    ok, buf = cv2.imencode(".jpg", horses())
    truncated.write_bytes(buf.tobytes()[:300])
    with pytest.raises(InputError, match="trunc.jpg: cannot decode image"):
        read_image(truncated)


def test_resolve_sources(tmp_path):
    files = write_sizes_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    video = write_video(tmp_path / "clip.avi", n=3)
    found = resolve_sources([tmp_path / "imgs", video])
    assert [s.path.name for s in found] == sorted(p.name for p in files.values()) + ["clip.avi"]
    assert {s.kind for s in found} == {"image", "video"}
    assert [s.path.name for s in resolve_sources([str(tmp_path / "**" / "*.png")])] == sorted(
        p.name for p in files.values() if p.suffix == ".png")
    (tmp_path / "empty").mkdir()
    cases = [
        (tmp_path / "empty", "empty: folder holds no images or videos"),
        (tmp_path / "missing", "missing: no such file or folder"),
        (tmp_path / "imgs" / "notes.txt", "notes.txt: not an image or video file"),
        (str(tmp_path / "*.gif"), r"\*.gif: the pattern matches no images or videos"),
    ]
    for spec, msg in cases:
        with pytest.raises(InputError, match=msg):
            resolve_sources([spec])


def test_video_reader_and_iter_frames(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", n=4, size=(120, 160), fps=7)
    with VideoReader(clip) as v:
        assert (v.height, v.width, v.fps) == (120, 160, 7.0)
        assert len(list(v)) == 4
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match="broken.mp4: cannot read video"):
        VideoReader(broken)
    bad_img = tmp_path / "bad.png"
    bad_img.write_bytes(b"nope")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), horses())
    warned: list[str] = []
    frames = list(iter_frames(resolve_sources([bad_img, good, broken, clip]), warned.append))
    assert [(f.source.path.name, f.frame) for f in frames] == [("good.png", None)] + [("clip.mp4", i) for i in range(4)]
    assert len(warned) == 2 and "bad.png" in warned[0] and "broken.mp4" in warned[1]
    assert all(w.endswith("skipped") for w in warned)


def _det(names=("a", "b")):
    return Detections(np.array([[10, 20, 50, 100], [0, 0, 5, 5]], np.float32), np.array([0.9, 0.3], np.float32),
                      np.array([1, 0], np.int64), names, (200, 100), path="imgs/000000000042.jpg")


def test_detection_formats():
    d = _det()
    assert len(d) == 2 and d.class_names == ["b", "a"] and d.counts() == {"a": 1, "b": 1}
    doc = json.loads(d.to_json())
    assert doc["width"] == 100 and doc["height"] == 200 and doc["path"] == "imgs/000000000042.jpg"
    assert doc["detections"][0] == {"class_id": 1, "class_name": "b", "score": 0.9, "xyxy": [10.0, 20.0, 50.0, 100.0]}
    coco = d.to_coco()
    assert coco[0] == {"image_id": 42, "category_id": 1, "bbox": [10.0, 20.0, 40.0, 80.0], "score": 0.9}
    assert d.to_yolo_txt().splitlines() == ["1 0.3 0.3 0.4 0.4", "0 0.025 0.0125 0.05 0.025"]
    assert d.to_yolo_txt(save_conf=True).splitlines()[0] == "1 0.3 0.3 0.4 0.4 0.9"
    assert Detections.empty(("a",), (5, 5)).to_coco() == []
    assert d.name(7) == "7"


def test_coco_category_ids_for_coco_models():
    names = coco_names()
    assert len(names) == 80 and len(COCO80_TO_91) == 80 and names[0] == "person"
    d = _det(names)
    d.classes = np.array([79, 11])
    assert [e["category_id"] for e in d.to_coco()] == [90, 13]
    assert d.to_coco(image_id="x")[0]["image_id"] == "x"
