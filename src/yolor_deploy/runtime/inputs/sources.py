"""Input sources: image files, folders, globs and video files, read as 8-bit BGR frames.

Images are decoded like upstream `detect.py` (`cv2.imread` colour mode): grayscale is expanded to
3 channels, alpha dropped, 16-bit reduced to 8 bits (`>> 8`), EXIF orientation applied. A file
that cannot be decoded raises `InputError`; `iter_frames` turns that into a warning and skips it.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...fs import check_regular, open_regular
from .image_header import check_image, check_pixels
from .opencv import cv2  # loaded at first use, with OpenCV's own pixel cap

MAX_FILE_BYTES = 1 << 30  # an image file above 1 GiB is refused before it is read

IMAGE_SUFFIXES = (".bmp", ".dib", ".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp",
                  ".jp2", ".pbm", ".pgm", ".ppm", ".pnm", ".sr", ".ras")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".asf",
                  ".flv", ".ts")


@dataclass(frozen=True)
class Source:
    """One input file; `kind` is "image" or "video"."""

    path: Path
    kind: str


@dataclass
class Frame:
    """A decoded input: `image` ndarray[H, W, 3] uint8 BGR; for a video, `frame` is the index in it
    and `video` the open reader (fps, size)."""

    source: Source
    image: np.ndarray
    frame: int | None = None
    video: VideoReader | None = None


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def _supported() -> str:
    return f"images {' '.join(s[1:] for s in IMAGE_SUFFIXES)}; videos {' '.join(s[1:] for s in VIDEO_SUFFIXES)}"


MAX_GLOB_ENTRIES = 1_000_000


def _glob_files(pattern: str) -> list[Path]:
    """Files matching `pattern` (recursive `**`), sorted, each file once: a symlink loop or a second link to
    the same file does not repeat it. At most MAX_GLOB_ENTRIES paths are looked at."""
    matches = []
    for k, f in enumerate(glob.iglob(pattern, recursive=True)):
        if k >= MAX_GLOB_ENTRIES:
            raise InputError(f"{pattern}: matches more than {MAX_GLOB_ENTRIES:,} paths; narrow the pattern")
        if os.path.isfile(f):
            matches.append(f)
    seen: set[str] = set()
    files = []
    for f in sorted(matches, key=lambda m: (m.count(os.sep), m)):  # the shortest path names each file
        real = os.path.realpath(f)
        if real not in seen:
            seen.add(real)
            files.append(Path(f))
    return sorted(files)


def _what(p: Path) -> str:
    try:
        check_regular(p)
    except OSError as e:
        return (e.strerror or "").split(",")[0] or "not a file"
    return "a file"


def resolve_sources(specs: Iterable[str | Path]) -> list[Source]:
    """Expand files, folders (non-recursive, sorted) and globs (recursive `**`, sorted) into Sources.

    InputError: a missing path, a folder or glob without any image or video, a file named
    explicitly that is neither an image nor a video (by suffix).
    """
    out: list[Source] = []
    for spec in specs:
        s = str(spec)
        p = Path(s)
        if any(c in s for c in "*?[") and not p.exists():
            found = [Source(f, k) for f in _glob_files(s) if (k := _kind(f))]
            if not found:
                raise InputError(f"{s}: the pattern matches no images or videos ({_supported()})")
            out += found
        elif p.is_dir():
            found = [Source(f, k) for f in sorted(p.iterdir())
                     if f.is_file() and not f.name.startswith(".") and (k := _kind(f))]
            if not found:
                raise InputError(f"{p}: folder holds no images or videos ({_supported()})")
            out += found
        elif p.is_file():
            kind = _kind(p)
            if kind is None:
                raise InputError(f"{p}: not an image or video file by its suffix ({_supported()})")
            out.append(Source(p, kind))
        elif p.exists():
            raise InputError(f"{p}: {_what(p)}, not a regular file: not read")
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def to_bgr8(img: np.ndarray, source: str = "image") -> np.ndarray:
    """Any OpenCV-style image -> ndarray[H, W, 3] uint8 BGR (gray expanded, alpha dropped, 16 bit >> 8)."""
    img = np.asarray(img)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"{source}: unsupported pixel type {img.dtype} (pass uint8 or uint16 BGR)")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise InputError(f"{source}: unsupported image shape {img.shape} (expected HxW, HxWx3 or HxWx4)")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to ndarray[H, W, 3] uint8 BGR; InputError naming the file otherwise."""
    path = Path(path)
    try:
        with open_regular(path) as f:  # a FIFO or device is refused before it could block
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise InputError(f"{path}: {size:,} bytes is too large for an image (limit {MAX_FILE_BYTES:,})")
            buf = np.frombuffer(f.read(), dtype=np.uint8)  # bytes first: non-ASCII paths work everywhere
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    return decode_image(buf, str(path))


def decode_image(buf: np.ndarray | bytes, source: str, limit: int | None = None) -> np.ndarray:
    """Decode an encoded image (file bytes) to ndarray[H, W, 3] uint8 BGR, with the pixel cap (`limit`, default
    `max_pixels()`) checked from the header first; InputError naming `source` otherwise (PixelLimitError for
    the cap). For bytes read elsewhere (object stores, HTTP uploads)."""
    buf = np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray, memoryview)) else buf
    if buf.size == 0:
        raise InputError(f"{source}: empty file")
    if buf.size > MAX_FILE_BYTES:
        raise InputError(f"{source}: {buf.size:,} bytes is too large for an image (limit {MAX_FILE_BYTES:,})")
    check_image(np.ascontiguousarray(buf).data, source, limit)  # refused from the header, before decoding
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:  # OpenCV's own checks (its pixel cap) raise rather than return None
        raise InputError(f"{source}: cannot decode image ({' '.join(str(e).split())[-160:]})") from None
    if img is None or img.size == 0:
        raise InputError(f"{source}: cannot decode image (corrupt or not an image)")
    check_pixels(img.shape[1], img.shape[0], source, limit)
    return to_bgr8(img, source)


class VideoReader:
    """Frames of a video file as BGR uint8, with its fps and size.

    InputError when OpenCV cannot open the file or read its first frame.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            check_regular(self.path)  # OpenCV would block on a FIFO
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such video file") from None
        except OSError as e:
            raise InputError(f"{self.path}: cannot read ({e.strerror or e})") from None
        self.cap = cv2.VideoCapture(str(self.path))
        if self.cap.isOpened():
            w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
            try:
                check_pixels(w, h, str(self.path))
            except InputError:
                self.cap.release()
                raise
        ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok or first is None:
            self.cap.release()
            raise InputError(f"{self.path}: cannot read video (corrupt, empty or unsupported codec)")
        self._first: np.ndarray | None = first
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else 30.0
        self.height, self.width = first.shape[:2]
        self.frame_count = max(int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 1)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            first, self._first = self._first, None
            yield to_bgr8(first, str(self.path))
        while True:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                break
            yield to_bgr8(frame, str(self.path))

    def close(self) -> None:
        self.cap.release()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_frames(sources: Iterable[Source], warn: Callable[[str], None]) -> Iterator[Frame]:
    """Decode every source in order; unreadable images and videos are reported through `warn` and
    skipped. Video frames carry their index; `Frame.frame` is None for images."""
    for src in sources:
        if src.kind == "image":
            try:
                yield Frame(src, read_image(src.path))
            except InputError as e:
                warn(f"{e}; skipped")
            continue
        try:
            reader = VideoReader(src.path)
        except InputError as e:
            warn(f"{e}; skipped")
            continue
        with reader:
            for i, frame in enumerate(reader):
                yield Frame(src, frame, i, reader)
