"""Image dimensions from the file header, read before decoding: a 600-byte JPEG may declare 30000 x 30000
pixels (2.7 GB once decoded). Pure Python on the first bytes of the file; formats not parsed here are left to
OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, set from ours while the runtime loads OpenCV: `opencv.py`)."""
from __future__ import annotations

import os
import struct

DEFAULT_MAX_PIXELS = 1 << 28  # 268 M pixels (16384 x 16384): far above any camera, ~0.8 GB decoded
ENV_MAX_PIXELS = "YOLOR_MAX_IMAGE_PIXELS"


def max_pixels() -> int:
    """The decoded-pixel cap: $YOLOR_MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS."""
    try:
        return max(1, int(os.environ.get(ENV_MAX_PIXELS, DEFAULT_MAX_PIXELS)))
    except ValueError:
        return DEFAULT_MAX_PIXELS


def _jpeg(b: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", b[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            h, w = struct.unpack(">HH", b[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) declared by the header `head` (the file's first bytes; 64 KiB is plenty), or None
    when the format is not one parsed here or the header is incomplete."""
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return w, h
        if head[:2] == b"\xff\xd8":
            return _jpeg(head)
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)
        if head[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", head[6:10])
            return w, h
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind = head[12:16]
            if kind == b"VP8X":
                w = 1 + int.from_bytes(head[24:27], "little")
                h = 1 + int.from_bytes(head[27:30], "little")
                return w, h
            if kind == b"VP8 ":
                w, h = struct.unpack("<HH", head[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if kind == b"VP8L":
                bits = int.from_bytes(head[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"):
            tokens: list[int] = []
            for line in head[2:512].split(b"\n"):
                for t in line.split(b"#")[0].split():
                    if len(tokens) < 2:
                        tokens.append(int(t))
                if len(tokens) >= 2:
                    return tokens[0], tokens[1]
    except (struct.error, ValueError, IndexError):
        return None
    return None


def check_pixels(width: int, height: int, source: str, limit: int | None = None) -> None:
    """PixelLimitError (an InputError) when width * height exceeds the cap (`limit`, default `max_pixels()`)."""
    from ...errors import PixelLimitError

    cap = limit if limit is not None else max_pixels()
    if width * height > cap:
        raise PixelLimitError(f"{source}: {width}x{height} pixels exceeds the limit of {cap:,} decoded pixels "
                              f"(raise it with ${ENV_MAX_PIXELS} or --max-pixels)", width, height, cap)
