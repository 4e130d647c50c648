"""Detection results and their file formats: our JSON, COCO results JSON, YOLO txt labels."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...names import coco_names
from ..post.boxes import box_convert
from .draw import draw_detections

# COCO's 80 training classes -> the 91 category ids of the annotation files (upstream test.py).
COCO80_TO_91 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
                52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
                78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)


def coco_category_ids(names: Sequence[str]) -> tuple[int, ...] | None:
    """The 80->91 id map when `names` are COCO's 80 classes, else None (ids are class indices)."""
    return COCO80_TO_91 if tuple(names) == coco_names() else None


def coco_image_id(path: str | Path) -> int | str:
    """As upstream test.py: the file stem as an int when numeric, else the stem."""
    stem = Path(path).stem
    return int(stem) if stem.isnumeric() else stem


@dataclass
class Detections:
    """Detections in one image, in original-image pixels, by decreasing score.

    xyxy: ndarray[K, 4] float32; scores: ndarray[K] float32; classes: ndarray[K] int64;
    names: class names of the model; image_shape: (h, w) of the original image.
    image: the BGR ndarray[h, w, 3] the detections were made on (a reference, not a copy; `Detector` sets
    it), so `plot()` and `save(path)` need no image; not pickled (a result sent to another process
    carries no pixels: `path` still lets `save` read the file) and not compared.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    names: Sequence[str]
    image_shape: tuple[int, int]
    path: str | None = None
    frame: int | None = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def empty(cls, names: Sequence[str], image_shape: tuple[int, int], path: str | None = None) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   names, image_shape, path)

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        where = f" {Path(self.path).name}" if self.path else ""
        found = ", ".join(f"{n} {c}" for c, n in sorted(((c, n) for n, c in self.counts().items()), reverse=True))
        return (f"<Detections{where} {self.image_shape[1]}x{self.image_shape[0]}: {len(self)} "
                f"detection{'s' * (len(self) != 1)}{': ' + found if found else ''}>")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "image": None}

    def source_image(self) -> np.ndarray:
        """The image these detections were made on: the one kept, else the file they came from, read again."""
        from ...errors import InputError
        from ..inputs.sources import read_image

        if self.image is not None:
            return self.image
        if self.path is None:
            raise InputError("Detections: pass the image (these detections keep none and were not made from a file)")
        return read_image(self.path)

    def plot(self, image: np.ndarray | None = None) -> np.ndarray:
        """A copy of the image (`image`, default: the one these detections were made on, BGR) with the
        boxes and labels drawn."""
        return draw_detections(self.source_image() if image is None else image, self)

    def save(self, path: str | Path, image: np.ndarray | None = None) -> Path:
        """Write the annotated image (`image`, default: the one these detections were made on) to `path`,
        atomically."""
        from ... import fs
        from ...errors import InputError
        from ..inputs.opencv import cv2

        path = Path(path)
        image = self.plot(image)
        ok, buf = cv2.imencode(path.suffix or ".jpg", image)
        if not ok:
            raise InputError(f"{path}: cannot encode an image with suffix {path.suffix!r}")
        try:
            fs.write_bytes(path, buf.tobytes())
        except OSError as e:
            raise InputError(f"{path}: cannot write ({e.strerror or e})") from None
        return path

    def name(self, cls: int) -> str:
        return self.names[cls] if 0 <= cls < len(self.names) else str(cls)

    @property
    def class_names(self) -> list[str]:
        return [self.name(int(c)) for c in self.classes]

    def counts(self) -> Counter:
        """Detections per class name."""
        return Counter(self.class_names)

    def xywhn(self) -> np.ndarray:
        """ndarray[K, 4] (cx, cy, w, h) normalised by the image size: YOLO label boxes."""
        h, w = self.image_shape
        return box_convert(self.xyxy, "xyxy", "cxcywh") / np.array([w, h, w, h], np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: path, frame (videos), image size and one entry per detection."""
        d: dict[str, Any] = {}
        if self.path is not None:
            d["path"] = self.path
        if self.frame is not None:
            d["frame"] = self.frame
        d["width"], d["height"] = int(self.image_shape[1]), int(self.image_shape[0])
        d["detections"] = [
            {"class_id": int(c), "class_name": self.name(int(c)), "score": round(float(s), 5),
             "xyxy": [round(float(v), 3) for v in b]}
            for b, s, c in zip(self.xyxy, self.scores, self.classes)
        ]
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_coco(self, image_id: int | str | None = None,
                category_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """COCO results entries: image_id, category_id, bbox (x, y, w, h from the top-left), score.

        image_id defaults to `coco_image_id(path)`; category_ids maps class index -> category id
        (default: `coco_category_ids(names)`, i.e. the 91-id map for COCO models, else the index).
        """
        if image_id is None:
            image_id = coco_image_id(self.path or "0")
        if category_ids is None:
            category_ids = coco_category_ids(self.names)
        xywh = box_convert(self.xyxy.astype(np.float64), "xyxy", "xywh")
        return [
            {"image_id": image_id,
             "category_id": int(category_ids[int(c)]) if category_ids else int(c),
             "bbox": [round(float(v), 3) for v in b],
             "score": round(float(s), 5)}
            for b, s, c in zip(xywh, self.scores, self.classes)
        ]

    def to_yolo_txt(self, save_conf: bool = False) -> str:
        """YOLO label lines `cls cx cy w h [conf]`, normalised, `%g` formatted (as detect.py)."""
        lines = []
        for c, b, s in zip(self.classes, self.xywhn(), self.scores):
            vals = (int(c), *map(float, b)) + ((float(s),) if save_conf else ())
            lines.append(" ".join(f"{v:g}" for v in vals))
        return "".join(line + "\n" for line in lines)
