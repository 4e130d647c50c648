"""COCO mAP of a `Detector` on a folder of images with YOLO txt labels, scored by pycocotools.

As upstream `test.py --save-json`: detections (conf 0.001, iou 0.65, multi-label NMS, at most 300)
are scaled back to original-image pixels, written as COCO results (xywh from the top-left corner)
and scored by `pycocotools.cocoeval.COCOeval` with its default parameters (so at most 100
detections per image count, as upstream). The ground truth is built in memory from the labels.

Labels: one `STEM.txt` per image `STEM.*`, a line `cls cx cy w h` per object, normalised to the
image size. An image without a label file has no objects (a background image, as upstream).
Imports numpy, OpenCV, pycocotools and the torch-free runtime; never torch.
"""
from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..runtime.inputs.sources import IMAGE_SUFFIXES, read_image
from ..runtime.results.detections import Detections, coco_category_ids


@dataclass(frozen=True)
class LabeledImage:
    """An image file, its label file (None: none found, so no objects) and its labels
    ndarray[N, 5] float64 = (cls, cx, cy, w, h), normalised."""

    path: Path
    label_path: Path | None
    labels: np.ndarray


@dataclass
class CocoMetrics:
    """pycocotools' scores; AP values are NaN for a class without ground-truth objects.

    `stats`: COCOeval's 12 summary numbers (-1 where undefined); `summary`: its printed table.
    `instances`/`detections`: ground-truth objects / scored detections per class index.
    """

    map50: float
    map: float
    names: tuple[str, ...]
    ap50: np.ndarray  # ndarray[nc] AP@0.5 per class
    ap: np.ndarray  # ndarray[nc] AP@0.5:0.95 per class
    images: int
    background_images: int  # images without a label file or with an empty one
    instances: np.ndarray  # ndarray[nc] int64
    detections: np.ndarray  # ndarray[nc] int64
    stats: tuple[float, ...] = ()
    summary: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def per_class(self) -> list[dict[str, Any]]:
        return [{"class_id": i, "class_name": n, "instances": int(self.instances[i]),
                 "detections": int(self.detections[i]), "ap50": _num(self.ap50[i]), "ap": _num(self.ap[i])}
                for i, n in enumerate(self.names)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN written as null)."""
        return {"map50": _num(self.map50), "map": _num(self.map), "images": self.images,
                "background_images": self.background_images, "instances": int(self.instances.sum()),
                "detections": int(self.detections.sum()), "classes": self.per_class(),
                "coco_stats": [round(float(s), 6) for s in self.stats], "settings": self.settings}


def _num(v: float) -> float | None:
    return None if math.isnan(float(v)) else round(float(v), 6)


# --- inputs -----------------------------------------------------------------------------------
def read_yolo_labels(path: str | Path, nc: int | None = None) -> np.ndarray:
    """A YOLO label file -> ndarray[N, 5] float64 (cls, cx, cy, w, h). Blank lines are skipped.

    InputError naming the file and line: not 5 numbers, a class that is not an integer in
    [0, nc), a coordinate outside [0, 1] (upstream's own check), a negative width or height.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read label file ({getattr(e, 'strerror', None) or e})") from None
    rows = []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        rows.append(_parse_label_line(line, f"{path}:{k}", nc))
    return np.array(rows, np.float64).reshape(-1, 5)


def _parse_label_line(line: str, where: str, nc: int | None) -> list[float]:
    parts = line.split()
    if len(parts) != 5:
        raise InputError(f"{where}: expected 'cls cx cy w h', got {len(parts)} field(s): {line.strip()[:60]!r}")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"{where}: not a number in {line.strip()[:60]!r}") from None
    if not all(math.isfinite(v) for v in vals):
        raise InputError(f"{where}: not a finite number in {line.strip()[:60]!r}")
    cls = vals[0]
    if cls != int(cls) or cls < 0 or (nc is not None and cls >= nc):
        span = f" (the model has {nc} classes: 0..{nc - 1})" if nc is not None else ""
        raise InputError(f"{where}: class {parts[0]!r} is not a valid class index{span}")
    if any(v < 0 or v > 1 for v in vals[1:]):
        raise InputError(f"{where}: box {' '.join(parts[1:])} is not normalised to [0, 1]")
    return vals


def find_labeled_images(images: str | Path, labels: str | Path, nc: int | None = None) -> list[LabeledImage]:
    """Pair the images of folder `images` (non-recursive, sorted) with `labels/STEM.txt`.

    InputError: a missing folder, no image in `images`, no `.txt` file in `labels`, two images
    with one stem, a malformed label line (see `read_yolo_labels`).
    """
    images, labels = Path(images), Path(labels)
    for folder, what in ((images, "images"), (labels, "labels")):
        if not folder.is_dir():
            raise InputError(f"{folder}: no such {what} folder")
    files = [p for p in sorted(images.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(f"{images}: folder holds no images ({' '.join(s[1:] for s in IMAGE_SUFFIXES)})")
    label_files = {p.stem: p for p in labels.iterdir() if p.is_file() and p.suffix == ".txt"}
    if not label_files:
        raise InputError(f"{labels}: folder holds no .txt label files")
    seen: dict[str, Path] = {}
    out = []
    for f in files:
        if f.stem in seen:
            raise InputError(f"{f}: same stem as {seen[f.stem].name}; cannot tell whose label file "
                             f"{f.stem}.txt is")
        seen[f.stem] = f
        lp = label_files.get(f.stem)
        out.append(LabeledImage(f, lp, read_yolo_labels(lp, nc) if lp else np.zeros((0, 5))))
    return out


# --- COCO documents ---------------------------------------------------------------------------
def image_ids(paths: Sequence[str | Path]) -> list[int | str]:
    """COCO image ids as upstream test.py: the stems as ints when all are numeric, else the stems."""
    stems = [Path(p).stem for p in paths]
    return [int(s) for s in stems] if all(s.isnumeric() for s in stems) else stems


def category_ids(names: Sequence[str]) -> list[int]:
    """The COCO 80->91 id map for COCO's class names (as upstream test.py), else the class index."""
    return list(coco_category_ids(names) or range(len(names)))


def coco_ground_truth(items: Sequence[LabeledImage], shapes: Sequence[tuple[int, int]],
                      names: Sequence[str]) -> dict[str, Any]:
    """COCO ground-truth dict: images (id, file_name, width, height), one annotation per label
    (bbox xywh in pixels from the top-left corner, clipped to the image; area; iscrowd 0), and
    categories from `names`. `shapes`: (h, w) of each image."""
    ids, cats = image_ids([it.path for it in items]), category_ids(names)
    images, anns = [], []
    for it, img_id, (h, w) in zip(items, ids, shapes):
        images.append({"id": img_id, "file_name": it.path.name, "width": int(w), "height": int(h)})
        for cls, cx, cy, bw, bh in it.labels:
            x1, x2 = max((cx - bw / 2) * w, 0.0), min((cx + bw / 2) * w, float(w))
            y1, y2 = max((cy - bh / 2) * h, 0.0), min((cy + bh / 2) * h, float(h))
            bw_px, bh_px = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cats[int(cls)],
                         "bbox": [x1, y1, bw_px, bh_px], "area": bw_px * bh_px, "iscrowd": 0})
    categories = [{"id": c, "name": str(n), "supercategory": ""} for c, n in zip(cats, names)]
    return {"info": {"description": "yolor-deploy val ground truth"}, "images": images,
            "annotations": anns, "categories": categories}


def coco_results(dets: Sequence[Detections], ids: Sequence[int | str], names: Sequence[str]) -> list[dict]:
    """Detections -> COCO results entries (image_id, category_id, bbox xywh, score), as upstream."""
    cats = category_ids(names)
    return [e for d, i in zip(dets, ids) for e in d.to_coco(image_id=i, category_ids=cats)]


def coco_evaluate(gt: dict[str, Any], results: list[dict], names: Sequence[str]) -> CocoMetrics:
    """Score `results` against `gt` with `COCOeval` (bbox, default parameters), its printing captured."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    nc, cats = len(names), category_ids(names)
    cat_index = {c: i for i, c in enumerate(cats)}
    instances = np.bincount([cat_index[a["category_id"]] for a in gt["annotations"]], minlength=nc)
    detections = np.bincount([cat_index[r["category_id"]] for r in results], minlength=nc)
    n_bg = len({im["id"] for im in gt["images"]} - {a["image_id"] for a in gt["annotations"]})
    common = dict(names=tuple(names), images=len(gt["images"]), background_images=n_bg,
                  instances=instances.astype(np.int64), detections=detections.astype(np.int64))
    if not results:  # pycocotools cannot load an empty result list: nothing found scores 0
        zeros = np.where(instances > 0, 0.0, np.nan)
        return CocoMetrics(0.0, 0.0, ap50=zeros, ap=zeros.copy(), stats=(0.0,) * 12, **common)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes([dict(r) for r in results])  # loadRes adds keys: give it copies
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # [T thresholds, R recalls, K classes, A areas, M maxDets]
    k_of = {c: k for k, c in enumerate(ev.params.catIds)}
    ap50, ap = np.full(nc, np.nan), np.full(nc, np.nan)
    for i, c in enumerate(cats):
        if c in k_of and instances[i] > 0:
            ap50[i] = _mean_defined(precision[0, :, k_of[c], 0, -1])
            ap[i] = _mean_defined(precision[:, :, k_of[c], 0, -1])
    stats = tuple(float(s) for s in ev.stats)
    summary = "\n".join(s for s in out.getvalue().splitlines() if s.lstrip().startswith("Average"))
    return CocoMetrics(max(stats[1], 0.0), max(stats[0], 0.0), ap50=ap50, ap=ap, stats=stats,
                       summary=summary, **common)


def _mean_defined(p: np.ndarray) -> float:
    p = p[p > -1]
    return float(p.mean()) if p.size else float("nan")


# --- front door -------------------------------------------------------------------------------
def evaluate(detector, images: str | Path, labels: str | Path,
             progress: Callable[[int, int], None] | None = None,
             results_out: list[dict] | None = None) -> CocoMetrics:
    """COCO mAP of `detector` (a `runtime.Detector`, thresholds as it was built) on `images` with
    YOLO `labels`. Images are read and run `detector.batch_size` at a time; `progress(n, total)` is
    called after each batch of `n` images; the COCO results are appended to `results_out` when given.

    InputError: see `find_labeled_images`; an unreadable image; no object in any label file.
    """
    names = tuple(detector.names)
    items = find_labeled_images(images, labels, nc=len(names) or None)
    if not any(len(it.labels) for it in items):
        raise InputError(f"{labels}: no labelled object for any image of {images} "
                         f"(label files are matched to images by file stem)")
    shapes: list[tuple[int, int]] = []
    dets: list[Detections] = []
    step = max(int(detector.batch_size), 1)
    for k in range(0, len(items), step):
        arrays = [read_image(it.path) for it in items[k:k + step]]
        shapes += [a.shape[:2] for a in arrays]
        dets += [replace(d, image=None) for d in detector(arrays)]  # keep boxes, not 5000 decoded images
        if progress:
            progress(len(arrays), len(items))
    gt = coco_ground_truth(items, shapes, names)
    results = coco_results(dets, [im["id"] for im in gt["images"]], names)
    if results_out is not None:
        results_out.extend(results)
    metrics = coco_evaluate(gt, results, names)
    metrics.settings = {"conf_thres": detector.conf_thres, "iou_thres": detector.iou_thres,
                        "max_det": detector.max_det, "imgsz": list(detector.imgsz),
                        "pad_to_multiple": detector.pad_multiple if detector.auto else None}
    return metrics
