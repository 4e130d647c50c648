"""What a stream run writes: JSON Lines (one line per processed frame, flushed at once, so a killed run
leaves complete lines), annotated video per stream in segments (a new file every `segment_s` seconds of
capture time, written under a temporary name and renamed when closed: every `.mp4`/`.avi` left is playable),
and optionally every processed annotated frame as a JPEG."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..runtime.inputs.opencv import cv2

FOURCC = {".avi": "MJPG", ".mp4": "mp4v"}


class JsonlWriter:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict) -> None:
        assert self._f is not None
        self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class SegmentedVideo:
    """Annotated frames of one stream into `<folder>/<stem>_<nnnn><suffix>`, a new segment every `segment_s`."""

    def __init__(self, folder: Path, stem: str, segment_s: float, fps: float, suffix: str = ".avi"):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.stem, self.segment_s, self.fps, self.suffix = folder, stem, segment_s, fps, suffix
        self._writer: Any = None
        self._start = 0.0
        self._tmp: Path | None = None
        self._final: Path | None = None
        self.segments: list[Path] = []

    def write(self, image: np.ndarray, t_capture: float) -> None:
        if self._writer is not None and t_capture - self._start >= self.segment_s:
            self.close()
        if self._writer is None:
            self._final = self.folder / f"{self.stem}_{len(self.segments):04d}{self.suffix}"
            self._tmp = self._final.with_name(f".{self._final.stem}.part{self.suffix}")
            h, w = image.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*FOURCC[self.suffix]),
                                           self.fps, (w, h))
            self._start = t_capture
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        assert self._tmp is not None and self._final is not None
        os.replace(self._tmp, self._final)
        self.segments.append(self._final)


def save_frame(folder: Path, stream_stem: str, index: int, image: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stream_stem}_{index:06d}.jpg"
    tmp = path.with_name(f".{path.name}.part.jpg")
    cv2.imwrite(str(tmp), image)
    os.replace(tmp, path)
    return path
