"""HLS from a real loopback HTTP server: a playlist of MPEG-TS segments (written by OpenCV's FFmpeg backend)
read through the stream runner, every frame in order, the shapes detected, the JSON Lines complete."""
from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from helpers.mjpeg_server import shapes_frame
from helpers.trained_onnx import trained_onnx
from yolor_deploy.runtime import Detector
from yolor_deploy.streams.runner import StreamOutputs, stream

SEGMENTS, PER_SEGMENT, FPS = 3, 8, 10
STEP = 8  # the frame number is drawn as a flat 16x16 block of value 8*i: MPEG-4 keeps it within +-3


def numbered(i: int):
    im = shapes_frame(i)
    im[:16, :16] = STEP * i
    return im


def frame_number(result) -> int:
    return int(round(float(result.detections.image[4:12, 4:12].mean()) / STEP))


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture()
def hls_url(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    names = []
    for k in range(SEGMENTS):
        name = f"seg{k}.ts"
        w = cv2.VideoWriter(str(site / name), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (256, 256))
        if not w.isOpened():
            pytest.skip("machine: this OpenCV cannot write MPEG-TS (no FFmpeg backend)")
        for i in range(k * PER_SEGMENT, (k + 1) * PER_SEGMENT):
            w.write(numbered(i))
        w.release()
        names.append(name)
    (site / "live.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        + "".join(f"#EXTINF:{PER_SEGMENT / FPS:.3f},\n{n}\n" for n in names) + "#EXT-X-ENDLIST\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/live.m3u8"
    finally:
        server.shutdown()
        server.server_close()


def test_an_hls_playlist_is_read_frame_by_frame(tmp_path, hls_url):
    out = StreamOutputs(tmp_path / "out", segment_s=60, fps=FPS)
    run = stream(Detector(trained_onnx(256), imgsz=256), hls_url, no_drop=True, outputs=out,
                 retries=0, backoff=0.05, backoff_max=0.1)
    timer = threading.Timer(60, run.stop)
    timer.start()
    try:
        got = list(run)
    finally:
        timer.cancel()
    total = SEGMENTS * PER_SEGMENT
    numbers = [frame_number(r) for r in got]
    assert numbers == list(range(total)), numbers  # every frame, in order, none twice
    names = [sorted(shapes) for shapes in ({got[0].detections.class_names[c] for c in r.detections.classes}
                                           for r in got)]
    assert sum(n == ["circle", "square"] for n in names) >= total - 2, names
    lines = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == [r.frame for r in got]
    assert run.stats[0].processed == total and run.stats[0].dropped == 0
