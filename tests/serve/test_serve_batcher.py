"""The dynamic batcher on its own: what it gathers, what it refuses, what it drops, and that it drains."""
from __future__ import annotations

import asyncio
import threading

import pytest

from yolor_deploy.serve.batcher import BatchSettings, DynamicBatcher, QueueFullError


class Recorder:
    """A batch function that records the jobs of every call and answers job * 10 (or fails on a job < 0)."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[list[int]] = []
        self.gate = gate

    def __call__(self, jobs: list[int]) -> list[int]:
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append(list(jobs))
        if any(j < 0 for j in jobs):
            raise ValueError(f"bad job {min(jobs)}")
        return [j * 10 for j in jobs]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_concurrent_jobs_share_batches_up_to_max_batch_in_order():
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, BatchSettings(max_batch=4, max_wait_ms=200))
        await b.start()
        results = await asyncio.gather(*(b.submit(i) for i in range(6)))
        await b.stop()
        return results

    assert run(main()) == [0, 10, 20, 30, 40, 50]
    assert rec.calls == [[0, 1, 2, 3], [4, 5]]


def test_sizes_count_images_and_a_large_job_runs_alone():
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, BatchSettings(max_batch=4, max_wait_ms=100))
        await b.start()
        await asyncio.gather(b.submit(1, size=3), b.submit(2, size=2), b.submit(3, size=9), b.submit(4, size=1))
        await b.stop()

    run(main())
    assert rec.calls == [[1], [2], [3], [4]]  # 3+2 > 4; 2+9 > 4; the 9-image job alone; 9+1 > 4


def test_full_queue_refuses_at_once_and_timed_out_jobs_are_dropped():
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, BatchSettings(max_batch=8, max_wait_ms=300, max_queue=2, retry_after_s=3))
        await b.start()
        first = asyncio.create_task(b.submit(1))
        second = asyncio.create_task(asyncio.wait_for(b.submit(2), 0.05))  # gives up before its batch
        await asyncio.sleep(0.01)
        assert b.depth == 2
        with pytest.raises(QueueFullError) as e:
            await b.submit(3)
        assert e.value.retry_after_s == 3 and "the queue is full (at most 2 images wait" in str(e.value)
        with pytest.raises(asyncio.TimeoutError):
            await second
        assert await first == 10
        await b.stop()

    run(main())
    assert rec.calls == [[1]]


def test_the_queue_counts_images_not_requests():
    """--max-queue 5: a 3-image request and a 2-image one fill it; one more image is refused, whatever the request
    count (2 of 5); when the queue drains, the same request is accepted."""
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        b = DynamicBatcher(rec, BatchSettings(max_batch=8, max_wait_ms=10_000, max_queue=5))
        await b.start()
        jobs = [asyncio.create_task(b.submit(1, size=3)), asyncio.create_task(b.submit(2, size=2))]
        await asyncio.sleep(0.01)
        assert b.depth == 5
        with pytest.raises(QueueFullError):
            await b.submit(3, size=1)
        b.flush()
        gate.set()
        assert await asyncio.gather(*jobs) == [10, 20]
        assert b.depth == 0 and await b.submit(4, size=5) == 40
        with pytest.raises(QueueFullError):  # more images than the queue holds: never queued
            await b.submit(5, size=6)
        await b.stop()

    run(main())
    assert rec.calls == [[1, 2], [4]]


def test_a_failing_batch_fails_its_jobs_and_the_batcher_goes_on():
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, BatchSettings(max_batch=4, max_wait_ms=50))
        await b.start()
        results = await asyncio.gather(b.submit(-1), b.submit(5), return_exceptions=True)
        after = await b.submit(7)
        await b.stop()
        return results, after

    (bad, also_bad), after = run(main())
    assert isinstance(bad, ValueError) and isinstance(also_bad, ValueError) and after == 70
    assert rec.calls == [[-1, 5], [7]]


def test_jobs_wait_while_the_worker_is_busy_then_go_as_one_batch_and_stop_drains():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        b = DynamicBatcher(rec, BatchSettings(max_batch=8, max_wait_ms=0, workers=1))
        await b.start()
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.05)  # job 0 runs (blocked on the gate); the next ones queue up
        rest = [asyncio.create_task(b.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        assert b.depth == 5
        gate.set()
        stopping = asyncio.create_task(b.stop())
        results = [await first] + [await t for t in rest]
        await stopping
        return results

    assert run(main()) == [0, 10, 20, 30, 40, 50]
    assert rec.calls == [[0], [1, 2, 3, 4, 5]]


def test_settings_out_of_range():
    with pytest.raises(ValueError, match="max_batch 0 is out of range"):
        BatchSettings(max_batch=0)
