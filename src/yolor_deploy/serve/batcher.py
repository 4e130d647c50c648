"""Dynamic batching: concurrent requests gathered into one model call.

A request waits in a bounded queue; when a worker is free, the collector takes the oldest requests, up to
`max_batch` images, waiting at most `max_wait_ms` after the oldest one arrived for more to come (Triton's
max_queue_delay). Each gathered batch is one call of `run` in a worker thread (`workers` of them), so the event
loop keeps accepting requests while the model runs, and requests that arrive meanwhile form the next batch.
The queue is bounded in images, not requests (images are what hold memory; `serve --engine ray` counts the same
unit): a request whose images would take the waiting images past `max_queue` is refused at once
(`QueueFullError`: the server answers 503 with Retry-After); a request that is cancelled (its timeout passed)
before its batch starts is dropped from it.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


class QueueFullError(Exception):
    """The queue holds `max_queue` images already (or would, with this request's); try again in `retry_after_s`
    seconds. Both engines raise it with the same message."""

    def __init__(self, max_queue: int, retry_after_s: int):
        super().__init__(f"the queue is full (at most {max_queue} images wait, the server's --max-queue); "
                         f"retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Item:
    job: Any
    size: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchSettings:
    """`max_batch` images per model call; `max_wait_ms` the most the oldest request waits for company;
    `max_queue` images waiting at most (a request of k images counts k); `workers` model calls at once;
    `retry_after_s` sent with a 503."""

    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 64
    workers: int = 1
    retry_after_s: int = 1

    def __post_init__(self) -> None:
        checks = {"max_batch": self.max_batch >= 1, "max_wait_ms": 0 <= self.max_wait_ms <= 60_000,
                  "max_queue": self.max_queue >= 1, "workers": 1 <= self.workers <= 64,
                  "retry_after_s": self.retry_after_s >= 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"{bad[0]} {getattr(self, bad[0])} is out of range")


class DynamicBatcher:
    """Gathers submitted jobs into batches and runs `run(jobs) -> results` (same order) in worker threads.

    Use inside one event loop: `await start()`, `await submit(job, size)`, `await stop()` (finishes what was
    submitted first). `size` is the number of images of a job; a job larger than `max_batch` runs alone.
    """

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], settings: BatchSettings):
        self._run_fn, self.settings = run, settings
        self._pending: deque[_Item] = deque()
        self._wake = asyncio.Event()
        self._flush = False
        self._running: set[asyncio.Task] = set()
        self._collector: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def depth(self) -> int:
        """Images waiting for a batch (not yet running), the unit of `max_queue`."""
        return self._waiting_images()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="yolor-serve-batch")
        self._slots = asyncio.Semaphore(self.settings.workers)
        self._collector = asyncio.create_task(self._collect(), name="yolor-serve-batcher")

    async def submit(self, job: Any, size: int = 1) -> Any:
        """Queue `job` of `size` images and wait for its result (QueueFullError at once when its images would take
        the waiting images past `max_queue`)."""
        if self._collector is None:
            raise RuntimeError("the batcher is not started")
        size = max(int(size), 1)
        if self._waiting_images() + size > self.settings.max_queue:
            raise QueueFullError(self.settings.max_queue, self.settings.retry_after_s)
        item = _Item(job, size, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self._wake.set()
        return await item.future  # cancelled with the caller: the item is then skipped

    def flush(self) -> None:
        """From now on, dispatch what is waiting without waiting for `max_wait_ms` (shutting down)."""
        self._flush = True
        self._wake.set()

    async def stop(self) -> None:
        """Run everything submitted, then stop the collector and the worker threads."""
        self.flush()
        while self._pending and self._collector is not None and not self._collector.done():
            await asyncio.sleep(0.005)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # --- inside the loop ------------------------------------------------------------------------
    def _drop_cancelled(self) -> None:
        self._pending = deque(it for it in self._pending if not it.future.done())

    def _waiting_images(self) -> int:
        return sum(it.size for it in self._pending if not it.future.done())

    async def _wait_for_wake(self, timeout: float | None) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _gather(self) -> list[_Item]:
        """The next batch: the oldest live requests, once max_batch images wait or the oldest waited max_wait."""
        while True:
            self._drop_cancelled()
            if self._pending:
                break
            await self._wait_for_wake(None)
        deadline = self._pending[0].enqueued + self.settings.max_wait_ms / 1000
        while not self._flush and self._waiting_images() < self.settings.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            await self._wait_for_wake(remaining)
        self._drop_cancelled()
        batch: list[_Item] = []
        images = 0
        while self._pending and (not batch or images + self._pending[0].size <= self.settings.max_batch):
            item = self._pending.popleft()
            batch.append(item)
            images += item.size
        return batch

    async def _collect(self) -> None:
        assert self._slots is not None
        while True:
            await self._slots.acquire()  # gather only when a worker is free: the batch grows meanwhile
            try:
                batch = await self._gather()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Item]) -> None:
        assert self._slots is not None
        try:
            live = [it for it in batch if not it.future.done()]
            if not live:
                return
            loop = asyncio.get_running_loop()
            try:
                results = await loop.run_in_executor(self._executor, self._run_fn, [it.job for it in live])
                if len(results) != len(live):
                    raise RuntimeError(f"the batch function returned {len(results)} results for {len(live)} jobs")
            except Exception as e:  # noqa: BLE001 - every request of the batch gets the error, the loop goes on
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(e)
                return
            for it, r in zip(live, results):
                if not it.future.done():
                    it.future.set_result(r)
        finally:
            self._slots.release()
