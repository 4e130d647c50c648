"""Test inputs for the runtime: images of awkward sizes and formats, a generated video, and a
detection matcher for parity checks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from helpers.fixtures import fixture_path


def horses() -> np.ndarray:
    path = fixture_path("horses.jpg")
    img = cv2.imread(str(path))
    assert img is not None, f"OpenCV cannot read {path}"
    return img


def write_sizes_folder(folder: Path) -> dict[str, Path]:
    """tiny, portrait, landscape, grayscale, RGBA and 16-bit PNG versions of horses.jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    h = horses()
    files = {
        "tiny": (folder / "tiny.png", cv2.resize(h, (12, 8), interpolation=cv2.INTER_AREA)),
        "portrait": (folder / "portrait.jpg", h[:, 150:450]),
        "landscape": (folder / "landscape.png", cv2.resize(h, (700, 180))),
        "gray": (folder / "gray.png", cv2.cvtColor(h, cv2.COLOR_BGR2GRAY)),
        "rgba": (folder / "rgba.png", np.dstack([h, np.full(h.shape[:2], 90, np.uint8)])),
        "png16": (folder / "png16.png", h.astype(np.uint16) * 257),
    }
    for path, img in files.values():
        assert cv2.imwrite(str(path), img), path
    return {k: p for k, (p, _) in files.items()}


def write_video(path: Path, n: int = 6, size: tuple[int, int] = (240, 320), fps: float = 5.0) -> Path:
    """A short clip of horses.jpg panning, written with the codec its suffix needs (mp4v / MJPG)."""
    fourcc = "mp4v" if path.suffix == ".mp4" else "MJPG"
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    src = horses()
    for i in range(n):
        writer.write(cv2.resize(src[:, i * 20: i * 20 + 600], (w, h)))
    writer.release()
    return path


def assert_same_detections(a, b, iou_min: float = 0.99, score_tol: float = 1e-4, px_tol: float = 0.01) -> None:
    """Every detection of `a` has one in `b` of the same class with IoU >= iou_min (or, for slivers
    whose IoU is ill-conditioned, corners within px_tol pixels) and a score within score_tol, and
    the counts agree (order may differ on near-ties)."""
    from yolor_deploy.runtime import box_iou

    assert len(a) == len(b), f"{len(a)} vs {len(b)} detections"
    if not len(a):
        return
    iou = box_iou(a.xyxy.astype(np.float64), b.xyxy.astype(np.float64))
    close = np.abs(a.xyxy[:, None, :] - b.xyxy[None, :, :]).max(-1) <= px_tol
    ok = (iou >= iou_min) | close
    ok &= a.classes[:, None] == b.classes[None, :]
    ok &= np.abs(a.scores[:, None] - b.scores[None, :]) <= score_tol
    missing = np.flatnonzero(~ok.any(1))
    assert not len(missing), f"unmatched: {a.xyxy[missing]} {a.scores[missing]} {a.classes[missing]}"
