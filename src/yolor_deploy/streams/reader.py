"""One capture thread per stream: reads frames as they come, hands the consumer either the latest one (stale
frames dropped and counted) or every one (`no_drop`: a bounded queue, the reader waits when it is full), and
reconnects a dropped live stream with exponential backoff (bounded tries, one log line each)."""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from ..runtime.inputs.opencv import cv2
from .frames import Frame, StreamStats
from .sources import StreamSource

log = logging.getLogger("yolor_deploy.streams")


@dataclass(frozen=True)
class ReaderSettings:
    """`vid_stride`: keep every k-th frame; `no_drop`: keep all (queue of `queue_size`); `retries`: failed
    (re)connections in a row before a live stream is given up; `backoff`: first wait, doubled up to `backoff_max`;
    `timeout_s`: how long opening or reading may block."""

    vid_stride: int = 1
    no_drop: bool = False
    queue_size: int = 8
    retries: int = 5
    backoff: float = 0.5
    backoff_max: float = 8.0
    timeout_s: float = 10.0


def open_capture(target: str | int, timeout_s: float = 10.0):
    """An opened `cv2.VideoCapture` (FFmpeg for URLs and files; open and read give up after `timeout_s`, so a
    vanished server is noticed), or None."""
    if isinstance(target, int):
        cap = cv2.VideoCapture(target)
    else:
        ms = int(timeout_s * 1000)
        cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    return cap if cap.isOpened() else None


class StreamReader(threading.Thread):
    """Reads `source` into a latest-frame slot or a bounded queue until it ends, fails for good, or `stop()`."""

    def __init__(self, stream: int, source: StreamSource, settings: ReaderSettings, stats: StreamStats):
        super().__init__(name=f"stream-{stream}", daemon=True)
        self.stream, self.source, self.settings, self.stats = stream, source, settings, stats
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=max(1, settings.queue_size))
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._halt = threading.Event()
        self.finished = threading.Event()
        self.error: str | None = None
        self._next_index = 0

    def stop(self) -> None:
        self._halt.set()

    # --- producer -----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        finally:
            self.finished.set()
            with self._cond:
                self._cond.notify_all()

    def _run(self) -> None:
        failures, cap = 0, None
        while not self._halt.is_set():
            cap = open_capture(self.source.target, self.settings.timeout_s)
            if cap is not None and self._read_until_failure(cap):
                failures = 0  # it delivered frames: the next drop starts a fresh count
            if cap is not None:
                cap.release()
            if self._halt.is_set() or not self.source.live:
                if cap is None and not self.source.live:
                    self.error = f"{self.source.name}: cannot open"
                return
            failures += 1
            if failures > self.settings.retries:
                self.error = f"{self.source.name}: gave up after {self.settings.retries} reconnection tries"
                log.warning(self.error)
                return
            wait = min(self.settings.backoff * 2 ** (failures - 1), self.settings.backoff_max)
            log.warning("%s: stream lost; reconnecting in %.2f s (try %d of %d)", self.source.name, wait,
                        failures, self.settings.retries)
            self.stats.reconnects += 1
            if self._halt.wait(wait):
                return

    def _read_until_failure(self, cap) -> bool:
        got, k = False, 0
        while not self._halt.is_set():
            if k % self.settings.vid_stride:
                ok = cap.grab()
                k += 1
                if not ok:
                    return got
                continue
            ok, image = cap.read()
            k += 1
            if not ok or image is None:
                return got
            got = True
            frame = Frame(self.stream, self._next_index, time.monotonic(), time.time(), image)
            self._next_index += 1
            with self.stats.lock:
                self.stats.frames_in += 1
            self._deliver(frame)
        return got

    def _deliver(self, frame: Frame) -> None:
        if self.settings.no_drop:
            while not self._halt.is_set():
                try:
                    self._queue.put(frame, timeout=0.1)  # back-pressure: wait for the consumer
                    break
                except queue.Full:
                    continue
            with self._cond:
                self._cond.notify_all()
            return
        with self._cond:
            if self._latest is not None:
                with self.stats.lock:
                    self.stats.dropped += 1
            self._latest = frame
            self._cond.notify_all()

    # --- consumer -----------------------------------------------------------------------------
    def get(self, timeout: float) -> Frame | None:
        """The next frame (no_drop) or the latest unread one; None after `timeout` s or when none is left."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.settings.no_drop:
                    try:
                        return self._queue.get_nowait()
                    except queue.Empty:
                        pass
                elif self._latest is not None:
                    frame, self._latest = self._latest, None
                    return frame
                left = deadline - time.monotonic()
                if self.finished.is_set() or left <= 0:
                    return None
                self._cond.wait(min(left, 0.05))

    @property
    def exhausted(self) -> bool:
        """The thread ended and every frame it delivered was taken."""
        return self.finished.is_set() and self._latest is None and self._queue.empty()
