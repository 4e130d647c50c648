"""Detections -> the JSON a detect request answers (boxes in original-image pixels, full float32 precision)."""
from __future__ import annotations

from typing import Any

from ..runtime.results.detections import Detections


def detections_json(d: Detections, batch_size: int, time_ms: dict[str, float]) -> dict[str, Any]:
    """{"detections": [{"box": [x1, y1, x2, y2], "score", "class_id", "class_name"}], "width", "height",
    "batch": images in the model call this image ran in, "time_ms": {...}}. Numbers are the float32 values
    themselves (no rounding), so a client gets exactly what `predict` computes."""
    return {
        "detections": [{"box": [float(v) for v in b], "score": float(s), "class_id": int(c),
                        "class_name": d.name(int(c))}
                       for b, s, c in zip(d.xyxy, d.scores, d.classes)],
        "width": int(d.image_shape[1]), "height": int(d.image_shape[0]),
        "batch": int(batch_size),
        "time_ms": {k: round(v, 3) for k, v in time_ms.items()},
    }
