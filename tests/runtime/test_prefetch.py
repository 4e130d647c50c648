"""`runtime.inputs.prefetch`: order kept, bounded lead, errors where they happened, no thread left behind;
and `predict` on a folder (which reads through it) gives the same results as reading in line."""
from __future__ import annotations

import threading
import time

import pytest

from yolor_deploy.runtime.inputs.prefetch import prefetch


def test_order_and_every_item():
    assert list(prefetch(iter(range(1000)), depth=3)) == list(range(1000))
    assert list(prefetch([], depth=1)) == []


def test_the_producer_stays_at_most_depth_items_ahead():
    made = []

    def items():
        for i in range(50):
            made.append(i)
            yield i

    it = prefetch(items(), depth=4)
    assert next(it) == 0
    time.sleep(0.3)  # time enough to run far ahead if it could
    # one item taken, `depth` waiting in the buffer, one made and blocked on the full buffer
    assert len(made) <= 1 + 4 + 1, len(made)
    it.close()


def test_an_error_arrives_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetch(items(), depth=8):
            got.append(x)
    assert got == [1, 2]


def test_a_consumer_that_stops_stops_the_producer():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    before = {t.ident for t in threading.enumerate()}
    it = prefetch(endless(), depth=2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(
            t.name == "yolor-prefetch" and t.ident not in before for t in threading.enumerate()):
        time.sleep(0.02)
    assert not [t for t in threading.enumerate() if t.name == "yolor-prefetch" and t.ident not in before]


def test_overlap_is_real_when_both_sides_release_the_gil():
    """A producer and a consumer that each sleep 20 ms per item (sleep releases the GIL, as OpenCV's decoders
    and the inference engines do) take ~20 ms per item together, not 40."""
    def slow():
        for i in range(20):
            time.sleep(0.02)
            yield i

    t0 = time.perf_counter()
    for _ in prefetch(slow(), depth=2):
        time.sleep(0.02)
    overlapped = time.perf_counter() - t0
    print(f"20 items, 20 ms + 20 ms each: {overlapped:.2f} s with prefetch (0.80 s in line)")
    assert overlapped < 0.7
