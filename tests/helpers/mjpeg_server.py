"""A real MJPEG-over-HTTP camera for the stream tests: a `ThreadingHTTPServer` on a loopback port serving
`multipart/x-mixed-replace` JPEG frames of shapes moving on a plain background (circles and squares the bundled
trained model detects), each frame numbered in its top-left pixels so a test can tell which frame it got."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = b"yolorframe"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shapes_frame(i: int, seed: int = 0, size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """Frame `i` of a scene: a circle moving right and a square moving down (speed 3 px/frame), per `seed`."""
    h, w = size
    im = np.full((h, w, 3), (200 - 20 * (seed % 3), 190, 180), np.uint8)
    cx = 40 + (3 * i + 17 * seed) % (w - 80)
    cv2.circle(im, (cx, 80 + 10 * (seed % 4)), 28, (30, 30, 200), -1)
    y = 40 + (3 * i + 29 * seed) % (h - 110)
    cv2.rectangle(im, (150, y), (210, y + 60), (200, 60, 20), -1)
    im[:16, :16] = i % 256  # the frame number: two flat 8x8 JPEG blocks, read back exactly
    return im


def jpeg(im: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


class MjpegCamera:
    """Serves frames `start, start+1, ...` of scene `seed` at `fps` to each client, `frames` of them, then
    closes the connection. `once`: a second connection is refused with 404 (the camera has gone)."""

    def __init__(self, port: int | None = None, seed: int = 0, frames: int = 30, fps: float = 30.0,
                 start: int = 0, once: bool = False):
        self.port = port or free_port()
        self.seed, self.frames, self.fps, self.start, self.once = seed, frames, fps, start, once
        self.connections = 0
        self.sent = 0
        cam = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                cam.connections += 1
                if cam.once and cam.connections > 1:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY.decode()}")
                self.end_headers()
                try:
                    for i in range(cam.start, cam.start + cam.frames):
                        if cam._stop.is_set():
                            return
                        data = jpeg(shapes_frame(i, cam.seed))
                        self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                         + f"Content-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                        cam.sent += 1
                        time.sleep(1.0 / cam.fps)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self._handler = Handler
        self._stop = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start_serving(self) -> MjpegCamera:
        self._stop.clear()
        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> MjpegCamera:
        return self.start_serving()

    def __exit__(self, *exc) -> None:
        self.stop()
