"""`serve --engine ray`: a real `yolor-deploy serve MODEL --engine ray --replicas 2` process (a local Ray started by
the command, Ray Serve's proxy on a free port) answers like the plain server: detections equal a Detector's, the
same refusals (400/413, limits, /metrics), and SIGTERM stops it with exit 0 and no Ray process left behind."""
from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import pytest

from helpers.serve_checks import assert_same, check_refusals, images, post
from helpers.serve_server import IMGSZ, Server, metric, metrics, trained_onnx
from yolor_deploy.assets import sample_image
from yolor_deploy.cli.main import main
from yolor_deploy.runtime import Detector

pytest.importorskip("ray")
MAX_BODY_BYTES, MAX_PIXELS, MAX_IMAGES = 262_144, 1_000_000, 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> dict[int, str]:
    """{pid: command name} of every process below `pid` (from /proc: the raylet, GCS, workers, ...)."""
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        parent[int(stat.parent.name)], names[int(stat.parent.name)] = int(rest[1]), name
    found, frontier = {}, [pid]
    while frontier:
        p = frontier.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in found:
                found[child] = names[child]
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie is not: it holds no memory, its parent just has not collected it)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"


@pytest.fixture(scope="module")
def server():
    """One Ray start for the whole file; the last test stops it (the teardown only kills a leftover)."""
    port = free_port()
    s = Server(trained_onnx(), "--engine", "ray", "--replicas", "2", "--port", str(port), "--max-batch", "8",
               "--max-wait-ms", "30", "--max-body-mb", str(MAX_BODY_BYTES / (1 << 20)), "--max-pixels",
               str(MAX_PIXELS), "--max-images", str(MAX_IMAGES), ready_timeout=150)
    assert s.url == f"http://127.0.0.1:{port}", s.stderr
    yield s
    s.kill()


def test_model_info_and_start_line(server):
    info = httpx.get(f"{server.url}/v1/model", timeout=10).json()
    assert info["names"] == ["circle", "square", "triangle"] and info["input_size"] == [IMGSZ, IMGSZ]
    assert info["batching"] == {"engine": "ray", "replicas": 2, "max_batch": 8, "max_wait_ms": 30.0,
                                "max_queue": 64, "note": "batching up to 8 images per model call"}
    assert info["limits"] == {"max_body_bytes": MAX_BODY_BYTES, "max_pixels": MAX_PIXELS, "max_images": MAX_IMAGES,
                              "timeout_s": 30.0, "max_pixels_in_flight": max(MAX_PIXELS, 64 << 20),
                              "max_header_bytes": 65536, "header_timeout_s": 10.0, "body_timeout_s": 60.0}
    assert len(info["source_sha256"]) == 64
    started = [line for line in server.lines if line.startswith("serving ")]
    assert len(started) == 1 and "Ray Serve: 2 replica(s), 1 thread(s) each" in started[0], server.stderr


def test_concurrent_requests_are_batched_by_ray_serve_and_equal_the_detector(server):
    det = Detector(trained_onnx())  # what `predict MODEL` and the plain server run
    paths = images()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda p: post(server.url, p), paths))
    assert [r.status_code for r in responses] == [200] * len(paths), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    for p, body in zip(paths, bodies):
        im = cv2.imread(str(p))
        assert_same(body, det(im)[0], im.shape)
    assert sum(len(b["detections"]) for b in bodies) > 30
    assert max(b["batch"] for b in bodies) > 1  # @serve.batch put images of different requests in one call
    assert set(bodies[0]["time_ms"]) == {"decode", "queue", "pre", "infer", "post", "total"}


def test_several_images_and_per_request_settings(server, tmp_path):
    paths = [sample_image(), *images()[:2]]
    r = post(server.url, paths, {"conf": "0.5", "classes": "0,2"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    det = Detector(trained_onnx(), conf_thres=0.5, classes=[0, 2])
    assert len(results) == 3
    for p, body in zip(paths, results):
        im = cv2.imread(str(p))
        assert_same(body, det(im)[0], im.shape)
    assert {d["class_id"] for b in results for d in b["detections"]} <= {0, 2}
    assert len(results[0]["detections"]) > 2


def test_refusals_and_limits_are_the_plain_servers(server):
    check_refusals(server.url, MAX_BODY_BYTES, MAX_PIXELS, MAX_IMAGES)


def test_sigterm_stops_serve_and_ray_exit_0_nothing_left(server):
    below = descendants(server.proc.pid)
    assert "raylet" in below.values() and "gcs_server" in below.values(), below
    assert server.stop(signal.SIGTERM, timeout=90) == 0, server.stderr
    assert "SIGTERM: stopping" in server.stderr and server.lines[-1] == "stopped", server.stderr
    deadline = time.monotonic() + 30
    while (left := {p: n for p, n in below.items() if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, left
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=5)


@pytest.mark.parametrize(("args", "message"), [
    (["--replicas", "2"], "error: --replicas: only with --engine ray"),
    (["--ray-address", "auto"], "error: --ray-address: only with --engine ray"),
    (["--engine", "ray", "--workers", "2"], "error: --workers: only with --engine local"),
    (["--engine", "ray", "--replicas", "0"], "error: --replicas 0: out of range (expected 1..1024)"),
    (["--engine", "ray", "--mode", "throughput"], "error: --mode throughput: only with --engine local (with "
     "--engine ray, scale with --replicas: each replica runs on CPUs // replicas threads)"),
])
def test_engine_flags_are_checked_before_ray_starts(args, message, capsys):
    assert main(["serve", str(trained_onnx()), *args]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [message]


def test_a_bad_model_is_one_line_before_ray_starts(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert main(["serve", str(bad), "--engine", "ray"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}"), lines


def test_the_ray_queue_counts_images_like_the_plain_server():
    """--max-queue counts images in both engines: one replica taking 2 images at a time (--max-batch 1), --max-queue
    4. A 4-image request fits (2 running, 2 waiting); a second 4-image request sent while they wait is refused
    (only 2 images of room), although only one request waits: the plain server's 503 and message."""
    s = Server(trained_onnx(), "--engine", "ray", "--replicas", "1", "--max-batch", "1", "--max-wait-ms", "0",
               "--max-queue", "4", "--max-images", "4", "--imgsz", "2048", "--port", str(free_port()),
               ready_timeout=150)
    try:
        four = images()[:4]
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(post, s.url, four, None, 300)
            deadline = time.monotonic() + 60
            while metric(metrics(s.url), "yolor_serve_queue_depth") != 4:  # its 4 images sent to the replica
                assert time.monotonic() < deadline and not first.done(), first.result().text if first.done() else ""
                time.sleep(0.02)
            second = post(s.url, four, timeout=300)
            assert first.result().status_code == 200, first.result().text
        assert second.status_code == 503 and second.headers["retry-after"] == "1", second.text
        assert second.json() == {"error": "the queue is full (at most 4 images wait, the server's --max-queue); "
                                          "retry in 1 s", "kind": "queue_full"}
        assert post(s.url, four, timeout=300).status_code == 200  # room again
        assert s.stop(signal.SIGTERM, timeout=90) == 0, s.stderr
    finally:
        s.kill()
