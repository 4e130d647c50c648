"""Decode ahead: run an iterator in a background thread, `depth` items ahead of its consumer.

OpenCV's decoders and ONNX Runtime / OpenVINO release the GIL, so reading image N+1 overlaps inference on
image N (`predict` on a folder). The buffer is bounded (memory: at most `depth` decoded items waiting), the
order is kept, an exception raised by the iterator reaches the consumer at the point it happened, and a
consumer that stops early (an error, Ctrl-C, `break`) stops the producer: it is never left running.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """The items of `items` in order, produced by a daemon thread at most `depth` (>= 1) items ahead."""
    if depth < 1:
        raise ValueError(f"prefetch depth {depth}: must be >= 1")
    buf: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buf.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failed(e))
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="yolor-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buf.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
