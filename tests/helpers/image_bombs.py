"""Hostile images built by hand: tiny files that declare (and, without a header check, decode to) huge images.
Each is a valid file of its format: OpenCV decodes the small versions exactly (tests/runtime/test_image_headers.py)."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def tiff(width: int, height: int, order: str = "<", big: bool = False, pages: int = 1,
         loop: bool = False) -> bytes:
    """A grayscale deflate TIFF whose `height` one-row strips all point at the same compressed row (a 17000²
    image in ~300 KB). `pages` identical directories chained; `loop` points the last one back at the first."""
    row = zlib.compress(bytes(width), 9)
    off_size, cnt_fmt, ent_size = (8, "Q", 20) if big else (4, "I", 12)
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "H", 43 if big else 42)
    if big:
        head += struct.pack(order + "HHQ", 8, 0, 0)
    else:
        head += struct.pack(order + "I", 0)
    body = bytearray(head)
    data_at = len(body)
    body += row
    offsets_at = len(body)
    body += struct.pack(f"{order}{height}{cnt_fmt}", *([data_at] * height))
    counts_at = len(body)
    body += struct.pack(f"{order}{height}{cnt_fmt}", *([len(row)] * height))
    value_type = 16 if big else 4
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1),
            (273, value_type, height, offsets_at), (277, 3, 1, 1), (278, 4, 1, 1), (279, value_type, height, counts_at)]
    ifds = []
    for _ in range(pages):
        if len(body) % 2:
            body += b"\0"
        ifds.append(len(body))
        body += struct.pack(order + ("Q" if big else "H"), len(tags))
        for tag, kind, count, value in tags:
            size = {3: 2, 4: 4, 16: 8}[kind]
            val = struct.pack(order + {2: "H", 4: "I", 8: "Q"}[size], value).ljust(off_size, b"\0")
            body += struct.pack(order + "HH" + cnt_fmt, tag, kind, count) + val
        body += bytes(off_size)  # next directory: patched below
    for k, at in enumerate(ifds):
        nxt = ifds[k + 1] if k + 1 < pages else (ifds[0] if loop else 0)
        end = at + (8 if big else 2) + len(tags) * ent_size
        body[end:end + off_size] = struct.pack(order + ("Q" if big else "I"), nxt)
    first = 8 if big else 4
    body[first:first + off_size] = struct.pack(order + ("Q" if big else "I"), ifds[0])
    return bytes(body)


def png(width: int, height: int) -> bytes:
    """A grayscale PNG of zeros, compressed row by row (16000² in ~250 KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def jpeg(width: int, height: int, app_bytes: int = 0) -> bytes:
    """An 8x8 JPEG whose frame header declares `width` x `height` and sits after `app_bytes` of APP1/APP2..
    segments (at most 65,533 bytes of data each)."""
    ok, buf = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    b = bytearray(buf.tobytes())
    i = 2
    while not (b[i] == 0xFF and b[i + 1] in (0xC0, 0xC2)):
        i += 2 + struct.unpack(">H", b[i + 2:i + 4])[0]
    b[i + 5:i + 9] = struct.pack(">HH", height, width)
    apps, n = bytearray(), 0
    while app_bytes > 0:
        part = min(app_bytes, 65533)
        apps += bytes([0xFF, 0xE1 + n % 14]) + struct.pack(">H", part + 2) + bytes(part)
        app_bytes -= part
        n += 1
    return bytes(b[:2] + apps + b[2:])
