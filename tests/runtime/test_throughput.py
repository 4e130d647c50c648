"""Throughput mode (several images in flight) gives the same detections as latency mode, in input order."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tests.helpers.trained_onnx import trained_onnx

from yolor_deploy.errors import InputError
from yolor_deploy.runtime.detector import Detector

IMAGES = sorted(Path("/work/shared/fixtures/trained/images").glob("*.jpg"))[:8]


def test_throughput_equals_latency_in_order():
    assert len(IMAGES) >= 4
    # flips make distinct images, so a reordering of results would show
    images = [np.ascontiguousarray(im[:, ::-1]) if k % 2 else im
              for k, im in enumerate(__import__("cv2").imread(str(p)) for p in IMAGES * 2)]
    lat = Detector(trained_onnx(), mode="latency")
    thr = Detector(trained_onnx(), mode="throughput", streams=3)
    assert thr.streams == 3
    want = list(lat.predict_many(images))
    got = list(thr.predict_many(images))
    assert len(got) == len(images)
    assert sum(len(d.xyxy) for d in want) > len(images)  # the trained model finds shapes
    assert_same_detections(want, got)


def assert_same_detections(want, got) -> None:
    assert len(want) == len(got)
    for a, b in zip(want, got):
        assert len(a.xyxy) == len(b.xyxy)
        np.testing.assert_array_equal(a.classes, b.classes)
        # fp32 noise floor (spec/upstream.md): 1 intra-op thread vs 2 reorders sums, ~1e-5 relative
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=1e-4, atol=1e-3)


def test_unknown_mode_refused():
    with pytest.raises(InputError, match="mode 'fast'"):
        Detector(trained_onnx(), mode="fast")


class _InFlight:
    """The real backend, counting how many calls are inside it at once (the most seen in `peak`)."""

    def __init__(self, backend):
        import threading

        self._backend, self._lock, self.now, self.peak = backend, threading.Lock(), 0, 0

    def __getattr__(self, name):
        return getattr(self._backend, name)

    def __call__(self, x):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            return self._backend(x)
        finally:
            with self._lock:
                self.now -= 1


def _images(n: int) -> list[np.ndarray]:
    cv2 = __import__("cv2")
    return [cv2.imread(str(p)) for p in (IMAGES * 3)[:n]]


def test_onnxruntime_throughput_runs_streams_calls_at_once_each_on_its_share_of_cores():
    det = Detector(trained_onnx(), mode="throughput", streams=2)
    # each call gets cores // streams intra-op threads: two calls do not fight over the same cores
    assert det.backend.session.get_session_options().intra_op_num_threads == max(1, len(os.sched_getaffinity(0)) // 2)
    spy = det.backend = _InFlight(det.backend)
    got = list(det.predict_many(_images(12)))
    assert len(got) == 12 and spy.peak == 2  # two images inside the model at once, never more than streams
    lat = Detector(trained_onnx())
    spy = lat.backend = _InFlight(lat.backend)
    list(lat.predict_many(_images(6)))
    assert spy.peak == 1  # latency mode: one at a time, on all cores


def test_openvino_throughput_compiles_with_the_throughput_hint_and_one_stream_per_call():
    pytest.importorskip("openvino", reason="machine: the optimize extra (OpenVINO) is not installed")
    det = Detector(trained_onnx(), backend="openvino", mode="throughput", streams=2)
    compiled = det.backend.compiled
    assert str(compiled.get_property("PERFORMANCE_HINT")) == "THROUGHPUT"
    assert int(compiled.get_property("NUM_STREAMS")) == 2  # under LATENCY there is one, and calls queue for it
    assert "2 streams" in det.backend.name
    spy = det.backend = _InFlight(det.backend)
    thr = list(det.predict_many(_images(12)))
    assert spy.peak == 2
    lat_det = Detector(trained_onnx(), backend="openvino")
    assert str(lat_det.backend.compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"
    assert_same_detections(list(lat_det.predict_many(_images(12))), thr)
    assert sum(len(d.xyxy) for d in thr) > 12


def test_detect_batches_groups_in_order_with_the_items():
    det = Detector(trained_onnx(), mode="throughput", streams=2, batch_size=3)
    items = [(k, im) for k, im in enumerate(_images(7))]
    groups = list(det.detect_batches(items, lambda it: it[1]))
    assert [[k for k, _ in g] for g, _, _ in groups] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [len(r) for _, r, _ in groups] == [3, 3, 1] and all(ms > 0 for _, _, ms in groups)
