"""Limits and defaults of the HTTP app (`create_app`), whatever engine runs the model."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..runtime.inputs.image_header import max_pixels
from .inputs import DetectParams

MIB = 1 << 20


@dataclass(frozen=True)
class ServeSettings:
    """`max_body_bytes`: request body cap (413, checked from Content-Length and while streaming);
    `max_pixels`: decoded pixels per image (413); `max_images`: images per request (413);
    `timeout_s`: per-request limit from arrival to answer (504); `defaults`: NMS settings a request
    does not give (predict's defaults); `max_pixels_in_flight`: decoded pixels of all requests being handled
    (admission before decoding, `serve.admission`: 413 over it alone, 503 when it does not fit now; None:
    `admission.default_budget(max_pixels)`)."""

    max_body_bytes: int = 32 * MIB
    max_pixels: int = field(default_factory=max_pixels)
    max_images: int = 16
    timeout_s: float = 30.0
    defaults: DetectParams = field(default_factory=DetectParams)
    max_pixels_in_flight: int | None = None
    header_timeout_s: float = 10.0  # a request head must arrive within (408; `serve.protocol`)
    body_timeout_s: float = 60.0  # a request body must arrive within, from its first byte (408)
    max_header_bytes: int = 64 * 1024  # request line + headers (414 / 431)

    @property
    def pixel_budget(self) -> int:
        from .admission import default_budget

        return self.max_pixels_in_flight or default_budget(self.max_pixels)

    def __post_init__(self) -> None:
        checks = {"max_body_bytes": self.max_body_bytes >= 1024, "max_pixels": self.max_pixels >= 1,
                  "max_images": self.max_images >= 1, "timeout_s": 0 < self.timeout_s <= 3600,
                  "max_pixels_in_flight": self.max_pixels_in_flight is None or self.max_pixels_in_flight >= 1,
                  "header_timeout_s": 0 < self.header_timeout_s <= 3600,
                  "body_timeout_s": 0 < self.body_timeout_s <= 3600,
                  "max_header_bytes": 1024 <= self.max_header_bytes <= 16 << 20}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{bad[0]} {getattr(self, bad[0])} is out of range")
