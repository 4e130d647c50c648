"""What a detection request carries, checked: query parameters -> `DetectParams`, uploaded bytes -> BGR images.

Shared by every engine (the local batcher, a Ray deployment): the same rules, the same one-line errors. Images
are decoded from bytes (never from a path) by the decoder `predict` reads files with
(`runtime.inputs.sources.decode_image`: the decoded-pixel cap checked from the header before a byte is decoded,
and again after decoding for formats the header reader does not parse), so a request and `predict` on the same
file see the same pixels; here its errors become 400 and 413 answers.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, PixelLimitError
from ..runtime.inputs.image_header import ENV_MAX_PIXELS
from ..runtime.inputs.sources import decode_image as runtime_decode_image

MAX_DET_LIMIT = 10_000
PARAM_NAMES = ("conf", "iou", "max_det", "classes")


class RequestError(Exception):
    """A request the server refuses: `status` (400, 413, ...), `kind` (the metrics label) and a one-line message."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers or {}


def bad_request(message: str) -> RequestError:
    return RequestError(400, "bad_request", message)


@dataclass(frozen=True)
class DetectParams:
    """Per-request NMS settings (predict's `--conf-thres`, `--iou-thres`, `--max-det`, `--classes`)."""

    conf_thres: float = 0.25
    iou_thres: float = 0.45
    max_det: int = 300
    classes: tuple[int, ...] | None = None


def _one(name: str, values: list[str]) -> str:
    if len(values) != 1:
        raise bad_request(f"{name}: given {len(values)} times (give it once)")
    return values[0].strip()


def _unit_float(name: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise bad_request(f"{name}: {text!r} is not a number (expected 0..1)") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise bad_request(f"{name}: {text} is out of range (expected 0..1)")
    return v


def _classes(values: list[str], nc: int) -> tuple[int, ...]:
    out: list[int] = []
    for text in (t.strip() for v in values for t in v.split(",")):
        if not text:
            continue
        try:
            c = int(text)
        except ValueError:
            raise bad_request(f"classes: {text!r} is not a class index (expected integers 0..{nc - 1}, "
                              f"e.g. classes=0,2)") from None
        if not 0 <= c < nc:
            raise bad_request(f"classes: {c} is out of range (the model has {nc} classes, 0..{nc - 1})")
        out.append(c)
    if not out:
        raise bad_request("classes: empty (give class indices, e.g. classes=0,2, or leave it out)")
    return tuple(dict.fromkeys(out))


def parse_params(items: Iterable[tuple[str, str]], nc: int, defaults: DetectParams = DetectParams()) -> DetectParams:
    """Query items (name, value) -> DetectParams; `nc` classes in the model. RequestError(400) naming the field.

    conf and iou in 0..1, max_det 1..MAX_DET_LIMIT, classes comma-separated or repeated (`classes=0,2` or
    `classes=0&classes=2`); an unknown name is refused (a typo would otherwise be silently ignored).
    """
    given: dict[str, list[str]] = {}
    for name, value in items:
        given.setdefault(name, []).append(value)
    unknown = sorted(set(given) - set(PARAM_NAMES))
    if unknown:
        raise bad_request(f"{unknown[0]}: unknown query parameter (allowed: {', '.join(PARAM_NAMES)})")
    conf = _unit_float("conf", _one("conf", given["conf"])) if "conf" in given else defaults.conf_thres
    iou = _unit_float("iou", _one("iou", given["iou"])) if "iou" in given else defaults.iou_thres
    max_det = defaults.max_det
    if "max_det" in given:
        text = _one("max_det", given["max_det"])
        try:
            max_det = int(text)
        except ValueError:
            raise bad_request(f"max_det: {text!r} is not an integer (expected 1..{MAX_DET_LIMIT})") from None
        if not 1 <= max_det <= MAX_DET_LIMIT:
            raise bad_request(f"max_det: {max_det} is out of range (expected 1..{MAX_DET_LIMIT})")
    classes = _classes(given["classes"], nc) if "classes" in given else defaults.classes
    return DetectParams(conf, iou, max_det, classes)


def decode_image(data: bytes, field: str, max_pixels: int) -> np.ndarray:
    """Encoded image bytes -> ndarray[H, W, 3] uint8 BGR, by the runtime's own decoder (`predict`'s).

    RequestError 400 (empty, undecodable) or 413 (more than `max_pixels` decoded pixels, refused from the
    header before decoding where the format is one `image_header` parses), naming `field`.
    """
    if not data:
        raise RequestError(400, "bad_image", f"{field}: empty upload")
    try:
        return runtime_decode_image(data, field, limit=max_pixels)
    except PixelLimitError as e:
        raise RequestError(413, "too_many_pixels", f"{field}: {e.width}x{e.height} pixels exceeds the limit of "
                                                   f"{e.limit:,} decoded pixels (the server's --max-pixels or "
                                                   f"${ENV_MAX_PIXELS})") from None
    except InputError as e:
        raise RequestError(400, "bad_image", str(e)) from None


def decode_images(blobs: Sequence[bytes], max_pixels: int, field: str = "image") -> list[np.ndarray]:
    """Every upload of a request, decoded in order; errors name the upload (`image[1]` when there are several)."""
    name = (lambda i: f"{field}[{i}]") if len(blobs) > 1 else (lambda i: field)
    return [decode_image(b, name(i), max_pixels) for i, b in enumerate(blobs)]
