"""A captured frame and the per-stream counters."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Frame:
    """Frame `index` (counted from the stream's first read frame, across reconnects) of stream `stream`,
    captured at `t_capture` (`time.monotonic()`) and `wall` (`time.time()`)."""

    stream: int
    index: int
    t_capture: float
    wall: float
    image: np.ndarray


@dataclass
class StreamStats:
    """Counters of one stream; `latency_ms`: capture -> result, one per processed frame."""

    name: str
    frames_in: int = 0
    processed: int = 0
    dropped: int = 0
    reconnects: int = 0
    latency_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def summary(self) -> dict:
        lat = sorted(self.latency_ms)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None

        return {"stream": self.name, "frames_in": self.frames_in, "processed": self.processed,
                "dropped": self.dropped, "reconnects": self.reconnects,
                "latency_ms_p50": pct(0.5), "latency_ms_p90": pct(0.9)}
