"""OpenCV, loaded lazily (on first use, never at import) with its own decoded-pixel cap set from ours.

OpenCV reads `OPENCV_IO_MAX_IMAGE_PIXELS` once, when its library loads (a static of `imgcodecs`), and
otherwise caps decoding at 2^30 pixels. `load_opencv()` is the one place the runtime imports `cv2`: the
variable is set to `image_header.max_pixels()` (unless the user set it) only while `cv2` is imported, then the
environment is put back as it was, OpenCV's own loader's additions included. Importing any module of ours
changes no environment variable and loads no OpenCV (`tests/test_imports.py`); the runtime's modules use the
`cv2` proxy below, which loads OpenCV at its first attribute access.

`set_max_pixels(n)` (called by `predict --max-pixels` and `serve --max-pixels`) sets our cap; OpenCV's own
cap follows it when OpenCV is not loaded yet (the normal case: the CLI sets it before reading any image). When
OpenCV is already loaded (a program imported `cv2` first, or a second call) its cap cannot change any more:
our header check (`image_header.check_image`, before every decode) is then the guard, and the function says so
by returning False.
"""
from __future__ import annotations

import os
import sys
import threading
from types import ModuleType
from typing import Any

from .image_header import ENV_MAX_PIXELS, max_pixels

OPENCV_MAX_PIXELS = "OPENCV_IO_MAX_IMAGE_PIXELS"
_LOCK = threading.Lock()
_LOADED: list[ModuleType] = []


def load_opencv() -> ModuleType:
    """`cv2`, imported with OpenCV's pixel cap set for the moment its library loads (see the docstring).

    Thread-safe: the first callers wait for one complete import. (`"cv2" in sys.modules` is no test of that:
    a module is in `sys.modules` from the start of its import, so a second thread would get a half-initialised
    module, and concurrent server requests did: an AttributeError, a 500.)"""
    if _LOADED:
        return _LOADED[0]
    with _LOCK:
        if not _LOADED:
            _LOADED.append(_import_opencv())
    return _LOADED[0]


def _import_opencv() -> ModuleType:
    if "cv2" in sys.modules:  # imported by the program (perhaps still importing in another thread: the
        import cv2  # import statement waits for a module being imported elsewhere to complete)
        return cv2
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


def set_max_pixels(n: int) -> bool:
    """Set the decoded-pixel cap to `n` ($YOLOR_MAX_IMAGE_PIXELS, inherited by worker processes). True when
    OpenCV's own cap will be `n` too (OpenCV not loaded yet, and $OPENCV_IO_MAX_IMAGE_PIXELS not set by the
    user); False when only our header check enforces it."""
    os.environ[ENV_MAX_PIXELS] = str(int(n))
    return "cv2" not in sys.modules and OPENCV_MAX_PIXELS not in os.environ


class _LazyOpenCV:
    """Stands for the `cv2` module; the first attribute read loads it through `load_opencv()`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load_opencv(), name)


cv2: Any = _LazyOpenCV()
