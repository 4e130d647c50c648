"""Write what `predict` produces into a folder, every file through a temporary name then renamed.

- `NAME.ext`: the annotated image (same suffix as the source; `.jpg` where OpenCV cannot write it);
- `VIDEO.mp4` (mp4v; `.avi` MJPG where mp4v cannot be written): the annotated video, and
  `VIDEO.json`: {"source", "fps", "width", "height", "frames": [Detections.to_dict(), ...]};
- `labels/NAME.txt` (`--save-txt`): YOLO lines `cls cx cy w h [conf]`, one file per image (empty when
  nothing was found), `labels/VIDEO_FRAME.txt` per video frame (frame index from 0);
- `predictions.json` (`--save-json`): COCO results for the images (image_id, category_id, bbox xywh,
  score).
Names are made unique when two sources share a stem.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ... import fs as atomic
from ...errors import InputError
from ..inputs.opencv import cv2
from ..inputs.sources import Frame
from .detections import Detections
from .draw import draw_detections

VIDEO_CODECS = ((".mp4", "mp4v"), (".avi", "MJPG"))


class _VideoOut:
    """One annotated video being written under a temporary name, plus its per-frame results."""

    def __init__(self, frame: Frame, stem: str, save_dir: Path, save_img: bool):
        self.source, self.stem, self.save_dir = frame.source, stem, save_dir
        reader = frame.video
        self.fps = reader.fps if reader else 30.0
        self.h, self.w = frame.image.shape[:2]
        self.frames: list[dict[str, Any]] = []
        self.writer, self.tmp, self.final = None, None, None
        if save_img:
            for ext, fourcc in VIDEO_CODECS:
                final = save_dir / f"{stem}{ext}"
                tmp = atomic.temp_name(final)
                code = cv2.VideoWriter_fourcc(*fourcc)  # type: ignore[attr-defined]
                w = cv2.VideoWriter(str(tmp), code, self.fps, (self.w, self.h))
                if w.isOpened():
                    self.writer, self.tmp, self.final = w, tmp, final
                    break
                w.release()
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    def add(self, image, det: Detections) -> None:
        self.frames.append(det.to_dict())
        if self.writer is not None:
            if image.shape[:2] != (self.h, self.w):  # a stream that changes size mid-way
                image = cv2.resize(image, (self.w, self.h))
            self.writer.write(draw_detections(image, det))

    def finish(self) -> list[Path]:
        out = []
        if self.writer is not None and self.tmp is not None and self.final is not None:
            self.writer.release()
            self.writer = None
            if not _playable(self.tmp):  # frames or the container were not written (disk full, ...)
                with contextlib.suppress(OSError):
                    self.tmp.unlink()
                raise InputError(f"{self.final}: cannot write the video (disk full or unwritable folder?); "
                                 "nothing was left at that name")
            os.replace(self.tmp, self.final)
            out.append(self.final)
        doc = {"source": str(self.source.path), "fps": self.fps, "width": self.w, "height": self.h,
               "frames": self.frames}
        atomic.write_json(self.save_dir / f"{self.stem}.json", doc)
        return out + [self.save_dir / f"{self.stem}.json"]

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()


class ResultWriter:
    """Collects (Frame, Detections) pairs in input order and writes them under `save_dir`."""

    def __init__(self, save_dir: str | Path, save_img: bool = True, save_txt: bool = False,
                 save_conf: bool = False, save_json: bool = False):
        self.save_dir = Path(save_dir)
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{self.save_dir}: cannot create output folder ({e.strerror or e})") from None
        self.save_img, self.save_txt, self.save_conf, self.save_json = save_img, save_txt, save_conf, save_json
        self.coco: list[dict[str, Any]] = []
        self.written: list[Path] = []
        self._stems: set[str] = {"predictions", "labels"}
        self._video: _VideoOut | None = None

    def claim_stem(self, stem: str) -> str:
        """`stem`, or `stem_2`, `stem_3`, ...: the first not yet used in this folder (in input order)."""
        name, k = stem, 2
        while name in self._stems:
            name, k = f"{stem}_{k}", k + 1
        self._stems.add(name)
        return name

    def add(self, frame: Frame, det: Detections, stem: str | None = None) -> None:
        """Write the outputs of one image or video frame. `stem` names its files instead of a unique stem
        claimed from the source's name (the Ray engine writes shards under placeholder stems)."""
        det.path = str(frame.source.path)
        if frame.frame is None:
            self.finish_video()
            self._add_image(frame, det, stem)
            return
        det.frame = frame.frame
        if self._video is None or self._video.source != frame.source:
            self.finish_video()
            self._video = _VideoOut(frame, stem or self.claim_stem(frame.source.path.stem), self.save_dir,
                                    self.save_img)
        self._video.add(frame.image, det)
        if self.save_txt:
            self._write_txt(f"{self._video.stem}_{frame.frame}", det)

    def _add_image(self, frame: Frame, det: Detections, stem: str | None = None) -> None:
        stem = stem or self.claim_stem(frame.source.path.stem)
        if self.save_img:
            suffix = frame.source.path.suffix.lower()
            if not cv2.haveImageWriter(f"x{suffix}"):
                suffix = ".jpg"
            ok, buf = cv2.imencode(suffix, draw_detections(frame.image, det))
            if ok:
                path = self.save_dir / f"{stem}{suffix}"
                atomic.write_bytes(path, buf.tobytes())
                self.written.append(path)
        if self.save_txt:
            self._write_txt(stem, det)
        if self.save_json:
            self.coco += det.to_coco()

    def _write_txt(self, stem: str, det: Detections) -> None:
        path = self.save_dir / "labels" / f"{stem}.txt"
        atomic.write_text(path, det.to_yolo_txt(self.save_conf))
        self.written.append(path)

    def finish_video(self) -> None:
        """Finish the open video, if any (its file and VIDEO.json appear under their final names)."""
        if self._video is not None:
            video, self._video = self._video, None
            self.written += video.finish()

    def close(self) -> None:
        """Finish the open video and write predictions.json."""
        self.finish_video()
        if self.save_json:
            path = self.save_dir / "predictions.json"
            atomic.write_json(path, self.coco)
            self.written.append(path)

    def abort(self) -> None:
        """Drop the half-written video (no file appears under its final name)."""
        if self._video is not None:
            self._video.abort()
            self._video = None


def _playable(path: Path) -> bool:
    """The written video opens and yields its first frame."""
    cap = cv2.VideoCapture(str(path))
    try:
        ok, _ = cap.read() if cap.isOpened() else (False, None)
        return bool(ok)
    finally:
        cap.release()
