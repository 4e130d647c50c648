"""Image dimensions from the file header, read before decoding: a 600-byte JPEG may declare 30000 x 30000
pixels (2.7 GB once decoded), a 281 KB TIFF 17000 x 17000. Pure Python on the encoded bytes (never a copy of
them), every walk bounded in steps. `image_size` reads every format OpenCV decodes here (JPEG, PNG, GIF, BMP,
WebP, PNM/PAM/PFM, Sun raster, Radiance HDR, TIFF/BigTIFF, JPEG 2000); `check_image` refuses, before
OpenCV sees a byte, an image over the cap and an image format whose size it cannot read (AVIF, OpenEXR, a
truncated or looping header): nothing is decoded on trust. OpenCV's own cap (`opencv.py`) is a second guard."""
from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable

DEFAULT_MAX_PIXELS = 1 << 28  # 268 M pixels (16384 x 16384): far above any camera, ~0.8 GB decoded
ENV_MAX_PIXELS = "YOLOR_MAX_IMAGE_PIXELS"
MAX_SEGMENTS = 4096  # JPEG markers, TIFF pages, JP2 boxes walked before the header is refused as looping
MAX_TIFF_ENTRIES = 4096  # tags in one TIFF directory
MAX_TEXT_HEADER = 65536  # bytes of a text header (PNM, PAM, PFM, Radiance HDR)

Buffer = bytes | bytearray | memoryview


def max_pixels() -> int:
    """The decoded-pixel cap: $YOLOR_MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS."""
    try:
        return max(1, int(os.environ.get(ENV_MAX_PIXELS, DEFAULT_MAX_PIXELS)))
    except ValueError:
        return DEFAULT_MAX_PIXELS


class _Bytes:
    """Bounds-checked big/little-endian reads on a buffer; a read past the end raises IndexError."""

    def __init__(self, data: Buffer, order: str = ">"):
        self.b = memoryview(data).cast("B")
        self.order = order

    def __len__(self) -> int:
        return len(self.b)

    def raw(self, i: int, n: int) -> bytes:
        if i < 0 or i + n > len(self.b):
            raise IndexError(i)
        return bytes(self.b[i:i + n])

    def u(self, i: int, n: int) -> int:
        return int.from_bytes(self.raw(i, n), "big" if self.order == ">" else "little")


def _jpeg(b: _Bytes) -> tuple[int, int] | None:
    """Walk the markers to the first SOFn frame header, skipping APPn/COM/tables of any length (at most
    MAX_SEGMENTS markers). A scan (SOS) or the end (EOI) before a frame header, or a height defined later
    by a DNL marker (0), is refused."""
    i = 2
    for _ in range(MAX_SEGMENTS):
        if b.u(i, 1) != 0xFF:
            return None
        while b.u(i + 1, 1) == 0xFF:  # fill bytes
            i += 1
        marker = b.u(i + 1, 1)
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # TEM, RSTn, SOI: no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI, SOS before any frame header
            return None
        length = b.u(i + 2, 2)
        if length < 2:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..15 (not DHT, JPG, DAC)
            h, w = b.u(i + 5, 2), b.u(i + 7, 2)
            return (w, h) if h else None
        i += 2 + length
    return None


def _bmp(b: _Bytes) -> tuple[int, int]:
    b.order = "<"
    if b.u(14, 4) == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return b.u(18, 2), b.u(20, 2)
    w, h = struct.unpack("<ii", b.raw(18, 8))  # a negative height is a top-down image
    return abs(w), abs(h)


def _webp(b: _Bytes) -> tuple[int, int] | None:
    b.order = "<"
    kind = b.raw(12, 4)
    if kind == b"VP8X":
        return 1 + b.u(24, 3), 1 + b.u(27, 3)
    if kind == b"VP8 " and b.raw(23, 3) == b"\x9d\x01\x2a":
        return b.u(26, 2) & 0x3FFF, b.u(28, 2) & 0x3FFF
    if kind == b"VP8L" and b.u(20, 1) == 0x2F:
        bits = b.u(21, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _tokens(b: _Bytes, start: int, count: int) -> list[bytes]:
    """The first `count` whitespace-separated tokens after `start`, `#` comments skipped (PNM, PFM)."""
    text = b.raw(start, min(len(b), MAX_TEXT_HEADER) - start)
    text = re.sub(rb"#[^\n\r]*", b" ", text)
    return text.split(None, count)[:count]


def _pnm(b: _Bytes) -> tuple[int, int] | None:
    magic = b.raw(0, 2)
    if magic == b"P7":  # PAM: WIDTH and HEIGHT lines up to ENDHDR
        head = b.raw(0, min(len(b), MAX_TEXT_HEADER)).split(b"ENDHDR", 1)[0]
        fields = dict(re.findall(rb"^\s*(WIDTH|HEIGHT)\s+(\d+)", head, re.M))
        return (int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])) if len(fields) == 2 else None
    tokens = _tokens(b, 2, 2)  # P1..P6, PF, Pf: width height
    if len(tokens) < 2 or not all(t.isdigit() and len(t) < 12 for t in tokens):
        return None
    return int(tokens[0]), int(tokens[1])


def _hdr(b: _Bytes) -> tuple[int, int] | None:
    """Radiance: header lines, an empty line, then the resolution line (`-Y 480 +X 640`; X first if rotated)."""
    head = b.raw(0, min(len(b), MAX_TEXT_HEADER))
    end = head.find(b"\n\n")
    if end < 0:
        return None
    m = re.match(rb"([-+])([XY]) (\d{1,10}) ([-+])([XY]) (\d{1,10})\s", head[end + 2:end + 64])
    if not m or m[2] == m[5]:
        return None
    first, second = int(m[3]), int(m[6])
    return (second, first) if m[2] == b"Y" else (first, second)


def _gif(b: _Bytes) -> tuple[int, int]:
    b.order = "<"
    return b.u(6, 2), b.u(8, 2)  # the logical screen


_TIFF_TYPES = {3: 2, 4: 4, 16: 8}  # SHORT, LONG, LONG8: the types a width or height may have


def _tiff(b: _Bytes) -> tuple[int, int] | None:
    """Every directory of the page chain (both byte orders, classic and BigTIFF); the largest page is
    returned. A directory visited twice (a loop), more than MAX_SEGMENTS pages or MAX_TIFF_ENTRIES tags, or a
    page without width and height is refused."""
    b.order = "<" if b.raw(0, 2) == b"II" else ">"
    big = b.u(2, 2) == 43
    if big and (b.u(4, 2) != 8 or b.u(6, 2) != 0):
        return None
    off_size, count_size, entry_size = (8, 8, 20) if big else (4, 2, 12)
    offset = b.u(8 if big else 4, off_size)
    seen: set[int] = set()
    best: tuple[int, int] | None = None
    for _ in range(MAX_SEGMENTS):
        if not offset:
            return best
        if offset in seen:
            return None
        seen.add(offset)
        n = b.u(offset, count_size)
        if n > MAX_TIFF_ENTRIES:
            return None
        size: dict[int, int] = {}
        for k in range(n):
            e = offset + count_size + k * entry_size
            tag, kind = b.u(e, 2), b.u(e + 2, 2)
            if tag in (256, 257) and kind in _TIFF_TYPES:
                size[tag] = b.u(e + 4 + off_size, _TIFF_TYPES[kind])
        if len(size) < 2:
            return None
        page = size[256], size[257]
        if best is None or page[0] * page[1] > best[0] * best[1]:
            best = page
        offset = b.u(offset + count_size + n * entry_size, off_size)
    return None


def _j2k(b: _Bytes, start: int) -> tuple[int, int] | None:
    """A JPEG 2000 codestream at `start`: SOC then SIZ (Xsiz - XOsiz, Ysiz - YOsiz)."""
    if b.raw(start, 4) != b"\xff\x4f\xff\x51":
        return None
    xs, ys, xo, yo = (b.u(start + 8 + 4 * k, 4) for k in range(4))
    return (xs - xo, ys - yo) if xs > xo and ys > yo else None


def _jp2(b: _Bytes) -> tuple[int, int] | None:
    """JP2 boxes: `jp2h`/`ihdr` (height, width) and the codestream's SIZ in `jp2c`; both must be read and
    the larger is returned (OpenJPEG decodes the codestream, whatever `ihdr` says)."""
    sizes: list[tuple[int, int]] = []
    i, end, boxes = 0, len(b), 0
    while i < end and boxes < MAX_SEGMENTS:
        boxes += 1
        length, kind, header = b.u(i, 4), b.raw(i + 4, 4), 8
        if length == 1:
            length, header = b.u(i + 8, 8), 16
        elif length == 0:
            length = end - i
        if length < header:
            return None
        if kind == b"jp2h":  # a superbox: walk into it
            i += header
            continue
        if kind == b"ihdr":
            sizes.append((b.u(i + 12, 4), b.u(i + 8, 4)))
        elif kind == b"jp2c":
            cs = _j2k(b, i + header)
            if cs is None:
                return None
            sizes.append(cs)
            break
        i += length
    if len(sizes) < 2:
        return None
    return max(sizes, key=lambda s: s[0] * s[1])


_Reader = Callable[[_Bytes], "tuple[int, int] | None"]
_FORMATS: list[tuple[str, Callable[[_Bytes], bool], _Reader]] = [
    ("JPEG", lambda b: b.raw(0, 2) == b"\xff\xd8", _jpeg),
    ("PNG", lambda b: b.raw(0, 8) == b"\x89PNG\r\n\x1a\n",
     lambda b: (b.u(16, 4), b.u(20, 4)) if b.raw(12, 4) == b"IHDR" else None),
    ("GIF", lambda b: b.raw(0, 6) in (b"GIF87a", b"GIF89a"), _gif),
    ("BMP", lambda b: b.raw(0, 2) == b"BM", _bmp),
    ("WebP", lambda b: b.raw(0, 4) == b"RIFF" and b.raw(8, 4) == b"WEBP", _webp),
    ("PNM", lambda b: b.raw(0, 2) in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7", b"PF", b"Pf"), _pnm),
    ("Sun raster", lambda b: b.raw(0, 4) == b"\x59\xa6\x6a\x95", lambda b: (b.u(4, 4), b.u(8, 4))),
    ("Radiance HDR", lambda b: b.raw(0, 2) == b"#?", _hdr),
    ("TIFF", lambda b: b.raw(0, 4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), _tiff),
    ("JPEG 2000", lambda b: b.raw(0, 12) == b"\0\0\0\x0cjP  \r\n\x87\n", _jp2),
    ("JPEG 2000", lambda b: b.raw(0, 4) == b"\xff\x4f\xff\x51", lambda b: _j2k(b, 0)),
    ("OpenEXR", lambda b: b.raw(0, 4) == b"\x76\x2f\x31\x01", lambda b: None),  # refused: not sized here
    ("AVIF/HEIF", lambda b: b.raw(4, 8) in (b"ftypavif", b"ftypavis", b"ftypheic", b"ftypmif1"), lambda b: None),
]


def image_format(data: Buffer) -> str | None:
    """The format name of `data` by its signature, or None."""
    b = _Bytes(data)
    for name, match, _ in _FORMATS:
        try:
            if match(b):
                return name
        except IndexError:
            continue
    return None


def image_size(data: Buffer) -> tuple[int, int] | None:
    """(width, height) declared by the encoded image `data` (the whole file: a JPEG frame header may sit
    after APP segments of any size), or None when the format is unknown or its header incomplete, looping
    or inconsistent."""
    for _, match, read in _FORMATS:
        b = _Bytes(data)
        try:
            if match(b):
                return read(b)
        except (IndexError, ValueError, struct.error):
            return None
    return None


def check_pixels(width: int, height: int, source: str, limit: int | None = None) -> None:
    """PixelLimitError (an InputError) when width * height exceeds the cap (`limit`, default `max_pixels()`)."""
    from ...errors import PixelLimitError

    cap = limit if limit is not None else max_pixels()
    if width * height > cap:
        raise PixelLimitError(f"{source}: {width}x{height} pixels exceeds the limit of {cap:,} decoded pixels "
                              f"({width * height:,} pixels; raise it with ${ENV_MAX_PIXELS} or --max-pixels)",
                              width, height, cap)


def check_image(data: Buffer, source: str, limit: int | None = None) -> tuple[int, int]:
    """The declared (width, height) of `data`, checked against the cap before anything is decoded.

    InputError naming `source`: an unknown signature ("cannot decode image (corrupt or not an image)"), a
    known format whose size cannot be read from its header ("format refused"); PixelLimitError over the cap.
    """
    from ...errors import InputError

    kind = image_format(data)
    if kind is None:
        raise InputError(f"{source}: cannot decode image (corrupt or not an image)")
    size = image_size(data)
    if size is None:
        raise InputError(f"{source}: cannot decode image ({kind}: cannot read the image size from the header: "
                         f"format refused)")
    check_pixels(*size, source=source, limit=limit)
    return size
