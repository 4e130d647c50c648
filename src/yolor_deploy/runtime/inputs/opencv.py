"""OpenCV, loaded with its own decoded-pixel cap set from ours, and nothing else changed.

OpenCV reads `OPENCV_IO_MAX_IMAGE_PIXELS` once, when its library loads (a static of `imgcodecs`), and
otherwise caps decoding at 2^30 pixels. The variable is set to `image_header.max_pixels()` (unless the
user set it) only while `cv2` is imported, then the environment is put back as it was, OpenCV's own
loader's additions included: importing the runtime leaves the process's environment (and its children's) as
it was. `yolor_deploy.runtime` imports this module first, so the cap
holds whenever the runtime is what loads OpenCV; a program that imported `cv2` before keeps OpenCV's own.
The images whose header `image_header` reads are refused from the header before OpenCV sees them.
"""
from __future__ import annotations

import os
import sys
from types import ModuleType

from .image_header import max_pixels

OPENCV_MAX_PIXELS = "OPENCV_IO_MAX_IMAGE_PIXELS"


def load_opencv() -> ModuleType:
    """`cv2`, imported with OpenCV's pixel cap set for the moment its library loads (see the docstring)."""
    if "cv2" in sys.modules:
        return sys.modules["cv2"]
    before = dict(os.environ)
    os.environ.setdefault(OPENCV_MAX_PIXELS, str(max_pixels()))
    try:
        import cv2
    finally:  # also undoes what OpenCV's own loader sets (LD_LIBRARY_PATH: read by the dynamic linker only
        for key in set(os.environ) - set(before):  # when a process starts, so it only reaches child processes)
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
    return cv2


cv2 = load_opencv()
