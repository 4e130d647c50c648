"""Admission by decoded pixels: what a request's images will take in memory is known from their headers, and
is admitted against a budget of pixels in flight before a byte is decoded.

A decoded image is 3 bytes a pixel (BGR), plus the model's letterboxed copy; compressed uploads are no measure
of that (a 750 KB PNG may decode to 16000x16000, 768 MB). Each request's images are sized from their headers
(`runtime.inputs.image_header`: a format whose size cannot be read there is refused), then:

- more pixels than the whole budget -> 413 (the request could never be admitted);
- more than what is left of it now -> 503 with Retry-After (try again when others are done);
- else held from before decoding until the answer is made (inference included), then given back, on every path.

One budget per app (one per process: the event loop's thread does all the counting, so no lock is needed).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..errors import InputError, PixelLimitError
from ..runtime.inputs.image_header import ENV_MAX_PIXELS, check_image
from .inputs import RequestError

PIXELS_FLOOR = 64 << 20  # the default budget is at least this (~200 MB decoded): 16 photos of 4 Mpx at once


def default_budget(max_pixels: int) -> int:
    """The default in-flight budget: one image at the per-image cap, and at least PIXELS_FLOOR."""
    return max(max_pixels, PIXELS_FLOOR)


def image_pixels(blobs: Sequence[bytes], max_pixels: int, field: str = "image") -> list[int]:
    """Each upload's decoded pixels, from its header (nothing is decoded): 400 for an empty upload or one whose
    size cannot be read, 413 over the per-image cap; errors name the upload (`image[1]` when several)."""
    out = []
    for i, data in enumerate(blobs):
        name = f"{field}[{i}]" if len(blobs) > 1 else field
        if not data:
            raise RequestError(400, "bad_image", f"{name}: empty upload")
        try:
            w, h = check_image(data, name, limit=max_pixels)
        except PixelLimitError as e:
            raise RequestError(413, "too_many_pixels",
                               f"{name}: {e.width}x{e.height} pixels exceeds the limit of {e.limit:,} decoded pixels "
                               f"(the server's --max-pixels or ${ENV_MAX_PIXELS})") from None
        except InputError as e:
            raise RequestError(400, "bad_image", str(e)) from None
        out.append(w * h)
    return out


class PixelBudget:
    """Decoded pixels in flight, at most `limit`; `retry_after_s` is what a 503 tells the client."""

    def __init__(self, limit: int, retry_after_s: int = 1):
        if limit < 1:
            raise ValueError(f"pixel budget {limit} is out of range")
        self.limit, self.retry_after_s, self.in_use = limit, retry_after_s, 0

    @contextmanager
    def hold(self, pixels: int, what: str = "image") -> Iterator[None]:
        """Hold `pixels` for the block (RequestError 413 / 503 when they cannot be admitted)."""
        if pixels > self.limit:
            raise RequestError(413, "too_many_pixels", f"{what}: {pixels:,} decoded pixels in one request exceed "
                                                       f"the server's budget of {self.limit:,} pixels in flight "
                                                       f"(--max-pixels-in-flight); send fewer or smaller images")
        if self.in_use + pixels > self.limit:
            raise RequestError(503, "pixels_busy", f"{what}: {pixels:,} decoded pixels do not fit now ({self.in_use:,} "
                                                   f"of {self.limit:,} in flight); try again in {self.retry_after_s} s",
                               {"Retry-After": str(self.retry_after_s)})
        self.in_use += pixels
        try:
            yield
        finally:
            self.in_use -= pixels
