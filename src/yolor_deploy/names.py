"""Class names shipped with the package (no torch, no OpenCV: usable from every layer)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def coco_names() -> tuple[str, ...]:
    """The 80 COCO class names both YOLOR branches were trained with."""
    text = resources.files("yolor_deploy").joinpath("configs/coco.names").read_text()
    return tuple(line.strip() for line in text.splitlines() if line.strip())
