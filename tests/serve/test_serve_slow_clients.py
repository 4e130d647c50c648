"""Header size, request line and slow clients against a real `serve` process: each is refused with its status
and one JSON line, within its deadline, and another client's `/health` is answered meanwhile (was: a 128 MB
header read for 19 s while `/health` waited 18 s; a trickled header held its connection forever)."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from helpers.serve_server import Server, trained_onnx

HEADER_TIMEOUT, BODY_TIMEOUT, MAX_HEADER_KB = 2.0, 2.0, 16


@pytest.fixture(scope="module")
def server():
    s = Server(trained_onnx(), "--header-timeout-s", str(HEADER_TIMEOUT), "--body-timeout-s", str(BODY_TIMEOUT),
               "--max-header-kb", str(MAX_HEADER_KB))
    yield s
    assert s.stop() == 0, s.stderr


def connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    return s


def answer(s: socket.socket) -> tuple[int, dict]:
    """(status, JSON body) of the response on `s`, read until the server closes."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def health_ms(server) -> float:
    t = time.perf_counter()
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
    return 1000 * (time.perf_counter() - t)


def send_forever(s: socket.socket, first: bytes, chunk: bytes, stop: threading.Event) -> int:
    """Send `first`, then `chunk` until the server stops reading (or `stop`); bytes sent."""
    sent = 0
    try:
        s.sendall(first)
        sent = len(first)
        while not stop.is_set():
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


@pytest.mark.parametrize("what, first, status, kind", [
    ("a 128 MB header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ", 431, "headers_too_large"),
    ("a 128 MB request line", b"GET /health?q=", 414, "request_line_too_long"),
])
def test_an_endless_request_head_is_cut_at_the_cap_and_others_are_served(server, what, first, status, kind):
    s = connect(server)
    stop = threading.Event()
    box: dict = {}
    sender = threading.Thread(target=lambda: box.setdefault("sent", send_forever(s, first, b"a" * 65536, stop)))
    t0 = time.monotonic()
    sender.start()
    try:
        times = [health_ms(server) for _ in range(5)]  # while the head is being sent
        got = answer(s)
    finally:
        stop.set()
        sender.join(30)
        s.close()
    print(f"{what}: {got[0]} after {time.monotonic() - t0:.2f} s, {box.get('sent', 0):,} bytes sent; "
          f"/health meanwhile {max(times):.0f} ms at most")
    assert got == (status, {"error": got[1]["error"], "kind": kind})
    assert got[1]["error"].endswith(f"longer than {MAX_HEADER_KB * 1024:,} bytes (the server's --max-header-kb)")
    assert box["sent"] < 128 << 20 and time.monotonic() - t0 < 10
    assert max(times) < 1000


def test_a_trickled_header_is_408_at_the_deadline(server):
    s = connect(server)
    t0 = time.monotonic()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")

    def trickle() -> None:
        try:
            for _ in range(40):
                s.sendall(b"X")
                time.sleep(0.25)
        except OSError:
            pass

    threading.Thread(target=trickle, daemon=True).start()
    assert health_ms(server) < 1000
    status, body = answer(s)
    waited = time.monotonic() - t0
    s.close()
    print(f"trickled header: {status} after {waited:.2f} s")
    assert (status, body["kind"]) == (408, "header_timeout")
    assert body["error"] == f"request head not received within {HEADER_TIMEOUT:g} s (the server's --header-timeout-s)"
    assert HEADER_TIMEOUT - 0.2 < waited < HEADER_TIMEOUT + 3


def test_a_stalled_body_is_408_at_the_deadline(server):
    s = connect(server)
    t0 = time.monotonic()
    s.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
              b"Content-Length: 100000\r\n\r\n--b\r\n")  # then nothing more
    assert health_ms(server) < 1000
    status, body = answer(s)
    waited = time.monotonic() - t0
    s.close()
    print(f"stalled body: {status} after {waited:.2f} s")
    assert (status, body) == (408, {"error": f"request body not received within {BODY_TIMEOUT:g} s (the server's "
                                             f"--body-timeout-s)", "kind": "body_timeout"})
    assert BODY_TIMEOUT - 0.2 < waited < BODY_TIMEOUT + 3
    m = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'yolor_serve_errors_total{kind="body_timeout"} 1.0' in m
