"""Overload, timeouts, graceful shutdown and start-up of real `yolor-deploy serve` processes."""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

import yolor_deploy
from helpers.no_torch import run_without_torch
from helpers.serve_server import Server, metric, metrics, trained_onnx
from yolor_deploy.assets import sample_image, val_images
from yolor_deploy.cli.main import main


def post(url: str, timeout: float = 60) -> httpx.Response:
    """One detect request on its own connection (no keep-alive: a pooled connection closed by a stopping
    server would look like a lost request)."""
    with httpx.Client(timeout=timeout, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        return client.post(f"{url}/v1/detect", files=[("image", ("s.jpg", sample_image().read_bytes()))])


def wait_for_metric(url: str, name: str, value: float, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while metric(metrics(url), name) != value:
        assert time.monotonic() < deadline, f"{name} never reached {value}"
        time.sleep(0.02)


def in_threads(fn, n: int) -> tuple[list, list[threading.Thread]]:
    out: list = [None] * n

    def run(i: int) -> None:
        try:
            out[i] = (fn(), time.monotonic())
        except Exception as e:  # noqa: BLE001 - recorded, asserted on by the test
            out[i] = (e, time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return out, threads


def test_full_queue_is_503_with_retry_after_timeouts_are_504_and_sigint_exits_0():
    s = Server(trained_onnx(), "--max-batch", "16", "--max-wait-ms", "3000", "--max-queue", "2", "--max-images", "2",
               "--timeout-s", "1")
    try:
        waiting, threads = in_threads(lambda: post(s.url), 2)  # they wait for company (3 s) past their timeout
        wait_for_metric(s.url, "yolor_serve_queue_depth", 2)
        r = post(s.url)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert r.json() == {"error": "the queue is full (at most 2 images wait, the server's --max-queue); "
                                "retry in 1 s", "kind": "queue_full"}
        for t in threads:
            t.join(30)
        assert [w[0].status_code for w in waiting] == [504, 504]
        assert waiting[0][0].json()["error"] == "no answer within 1 s (the server's --timeout-s)"
        assert httpx.get(f"{s.url}/health").status_code == 200
        assert httpx.get(f"{s.url}/v1/model").json()["batching"]["max_queue"] == 2
        m = metrics(s.url)
        assert metric(m, "yolor_serve_errors_total", kind="queue_full") == 1
        assert metric(m, "yolor_serve_errors_total", kind="timeout") == 2
        assert metric(m, "yolor_serve_requests_total", endpoint="/v1/detect", status="503") == 1
        time.sleep(2.2)  # the batch of the two timed-out requests comes due: nothing left in it to run
        assert metric(metrics(s.url), "yolor_serve_batch_size_count") == 0
        assert s.stop(signal.SIGINT) == 0, s.stderr
    finally:
        s.kill()
    assert "SIGINT: stopping" in s.stderr and s.lines[-1] == "stopped", s.stderr


def test_sigterm_during_a_burst_answers_every_accepted_request_and_exits_0():
    burst = 6
    s = Server(trained_onnx(), "--max-batch", "16", "--max-wait-ms", "5000")
    try:
        answers, threads = in_threads(lambda: post(s.url), burst)
        wait_for_metric(s.url, "yolor_serve_in_flight", burst)  # all accepted ...
        wait_for_metric(s.url, "yolor_serve_queue_depth", burst)  # ... decoded and queued, waiting for their batch
        signalled = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        rc = s.proc.wait(30)
    finally:
        s.kill()
    assert [a[0].status_code if isinstance(a[0], httpx.Response) else repr(a[0]) for a in answers] == [200] * burst
    assert all(a[1] > signalled for a in answers)  # answered after the signal, not before it
    assert all(len(a[0].json()["detections"]) > 5 and a[0].json()["batch"] == burst for a in answers)
    assert rc == 0, s.stderr
    assert "SIGTERM: stopping; finishing the requests in flight" in s.stderr and "stopped" in s.lines[-1]
    with pytest.raises(httpx.ConnectError):  # gone: nothing listens any more
        post(s.url, timeout=5)


def test_a_static_batch_1_model_is_served_without_batching_said_once():
    s = Server(trained_onnx(dynamic=False), "--max-batch", "8", "--max-wait-ms", "50")
    try:
        paths = sorted(val_images().glob("*.jpg"))[:4]
        answers, threads = in_threads(lambda: post(s.url), len(paths))
        for t in threads:
            t.join(60)
        assert [a[0].status_code for a in answers] == [200] * len(paths)
        assert {a[0].json()["batch"] for a in answers} == {1}
        m = metrics(s.url)
        assert metric(m, "yolor_serve_batch_size_count") == metric(m, "yolor_serve_batch_size_sum") == len(paths)
        assert httpx.get(f"{s.url}/v1/model").json()["batching"]["max_batch"] == 1
        assert s.stop() == 0
    finally:
        s.kill()
    notes = [line for line in s.lines if "batching off" in line]
    assert len(notes) == 1 and "the model takes a fixed batch of 1" in notes[0], s.stderr


@pytest.mark.parametrize("argv, message", [
    (["serve", "no-such-model.onnx"], "error: no-such-model.onnx: no such model file"),
    (["serve", "m.onnx", "--max-batch", "0"], "error: --max-batch 0: out of range (expected 1..1024)"),
    (["serve", "m.onnx", "--conf-thres", "1.5"], "error: --conf-thres 1.5: out of range (expected 0..1)"),
    (["serve", "m.onnx", "--port", "70000"], "error: --port 70000: out of range (expected 0..65535)"),
    (["serve", "m.onnx", "--max-queue", "8"], "error: --max-queue 8 is below --max-images 16: the queue counts "
                                              "images, and a request of 16 images could never be queued"),
    (["serve", "m.onnx", "--engine", "ray", "--max-queue", "8"], "error: --max-queue 8 is below --max-images 16: "
     "the queue counts images, and a request of 16 images could never be queued"),
])
def test_cli_errors_are_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message


def test_a_port_in_use_is_one_line_exit_2(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", str(trained_onnx()), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --host 127.0.0.1 --port {port}: cannot listen (") and "\n" not in err


def test_the_app_over_an_onnx_model_runs_without_torch_in_process():
    """create_app(LocalEngine(...)) as another host would embed it (TestClient runs the lifespan), torch-free."""
    body = f"""
import time
from fastapi.testclient import TestClient
from yolor_deploy.runtime import Detector
from yolor_deploy.serve.app import create_app
from yolor_deploy.serve.batcher import BatchSettings
from yolor_deploy.serve.engine import LocalEngine
from yolor_deploy.serve.settings import ServeSettings

engine = LocalEngine(Detector({str(trained_onnx())!r}, batch_size=4), BatchSettings(max_batch=4))
with TestClient(create_app(engine, ServeSettings())) as client:
    for _ in range(200):
        if client.get("/ready").status_code == 200:
            break
        time.sleep(0.05)
    r = client.post("/v1/detect", files=[("image", ("s.jpg", open({str(sample_image())!r}, "rb").read()))])
    assert r.status_code == 200 and len(r.json()["detections"]) > 5, r.text
"""
    result = run_without_torch(body)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr


def unrunnable_model(tmp_path):
    """The trained model with its output reshaped to [batch, 11, -1]: ONNX Runtime loads it (the batch is
    symbolic, so nothing can check the shape before a run) and fails at every run (4,032 x 8 is no multiple of 11)."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(str(trained_onnx()))
    name, inp = m.graph.output[0].name, m.graph.input[0].name
    for n in m.graph.node:
        n.output[:] = [o + "_pre" if o == name else o for o in n.output]
    m.graph.node.extend([helper.make_node("Shape", [inp], ["_s"]), helper.make_node("Slice", ["_s", "_0", "_1"], ["_b"]),
                         helper.make_node("Concat", ["_b", "_rest"], ["_shape"], axis=0),
                         helper.make_node("Reshape", [name + "_pre", "_shape"], [name])])
    m.graph.initializer.extend([helper.make_tensor("_0", TensorProto.INT64, [1], [0]),
                                helper.make_tensor("_1", TensorProto.INT64, [1], [1]),
                                helper.make_tensor("_rest", TensorProto.INT64, [2], [11, -1])])
    path = tmp_path / "unrunnable.onnx"
    onnx.save(m, str(path))
    return path


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_model_that_loads_but_cannot_run_is_one_line_exit_2_before_binding(tmp_path, engine):
    """Was: the server bound its port and answered /ready 503 forever ("warm-up failed" in the log); a
    subprocess, so that a server that keeps running fails the test (timeout) instead of hanging it."""
    import os
    import socket
    import subprocess
    import sys

    from helpers.mjpeg_server import free_port

    path, port = unrunnable_model(tmp_path), free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(yolor_deploy.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "yolor_deploy.cli.main", "serve", str(path), "--port", str(port),
                           "--engine", engine], capture_output=True, text=True, timeout=90, env=env)
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-2000:]
    assert err.startswith(f"error: {path}: the model loads but cannot run (warm-up inference on a blank 256x256 "
                          f"image failed: ") and "Reshape" in err and "\n" not in err, err
    with socket.socket() as s:  # nothing was left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0
