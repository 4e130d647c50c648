"""Regenerate src/yolor_deploy/assets/shapes.jpg: our own synthetic sample (no third-party photo).

Circles, squares and triangles on a gradient, like the scenes the `fixtures/trained` shapes model
learned, at 640x480 so letterboxing has something to do.
"""
from pathlib import Path

import cv2
import numpy as np


def make(seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([60 + 80 * xx / w, 90 + 60 * yy / h, 140 - 60 * xx / w], -1)
    img = (img + rng.normal(0, 6, img.shape)).clip(0, 255).astype(np.uint8)
    for k in range(9):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy, s = int(rng.integers(60, w - 60)), int(rng.integers(60, h - 60)), int(rng.integers(25, 70))
        kind = k % 3
        if kind == 0:
            cv2.circle(img, (cx, cy), s, color, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (cx - s, cy - s), (cx + s, cy + s), color, -1)
        else:
            pts = np.array([[cx, cy - s], [cx - s, cy + s], [cx + s, cy + s]], np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    return img


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "src/yolor_deploy/assets/shapes.jpg"
    cv2.imwrite(str(out), make(), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(out, out.stat().st_size)
