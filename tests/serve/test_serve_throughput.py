"""`serve --mode throughput`: a real server runs one model call per core at once (each on its share of the cores),
says so in its start line and /v1/model, and answers every concurrent request as `predict` does."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import pytest

from helpers.serve_checks import assert_same, images, post
from helpers.serve_server import Server, metric, metrics, trained_onnx
from yolor_deploy.runtime import Detector

CORES = len(os.sched_getaffinity(0))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_throughput_mode_server_answers_concurrent_requests_as_predict(backend):
    if backend == "openvino":
        pytest.importorskip("openvino", reason="machine: the optimize extra (OpenVINO) is not installed")
    s = Server(trained_onnx(), "--mode", "throughput", "--max-batch", "1", "--backend", backend)
    try:
        info = httpx.get(f"{s.url}/v1/model").json()
        assert info["batching"]["mode"] == "throughput" and info["batching"]["workers"] == max(2, CORES)
        started = [line for line in s.lines if line.startswith("serving ")]
        assert len(started) == 1 and f"{max(2, CORES)} worker(s), throughput mode" in started[0], s.stderr
        if backend == "openvino":
            assert f"{max(2, CORES)} streams" in info["backend"]
        det = Detector(trained_onnx(), backend=backend)  # latency mode, as `predict MODEL` runs it
        paths = images()
        before = metrics(s.url)
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda p: post(s.url, p), paths))
        assert [r.status_code for r in responses] == [200] * len(paths)
        for p, r in zip(paths, responses):
            im = cv2.imread(str(p))
            assert_same(r.json(), det(im)[0], im.shape)
        after = metrics(s.url)
        calls = metric(after, "yolor_serve_batch_size_count") - metric(before, "yolor_serve_batch_size_count")
        assert calls == len(paths)  # one image per model call: the streams, not batching, carry the load
    finally:
        assert s.stop() == 0, s.stderr
