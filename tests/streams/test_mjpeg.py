"""MJPEG over HTTP from a real loopback server, stopped and restarted mid-stream: the run reconnects, the JSON
Lines are complete, every video segment left behind is playable."""
from __future__ import annotations

import json
import threading

import cv2
import pytest

from helpers.mjpeg_server import MjpegCamera
from helpers.trained_onnx import trained_onnx
from yolor_deploy.runtime import Detector
from yolor_deploy.streams.runner import StreamOutputs, stream

FAST = {"retries": 4, "backoff": 0.05, "backoff_max": 0.4}


@pytest.fixture(scope="module")
def detector():
    return Detector(trained_onnx(256), imgsz=256)


def drain(run, limit_s: float = 60.0) -> list:
    """Every result of `run`; a watchdog stops a run that hangs (then the test fails on what is missing)."""
    dog = threading.Timer(limit_s, run.stop)
    dog.start()
    try:
        return list(run)
    finally:
        dog.cancel()


def frame_number(result) -> int:
    return int(round(float(result.detections.image[4:12, 4:12].mean())))


def test_reconnects_after_a_server_restart(tmp_path, detector):
    first = MjpegCamera(frames=10_000, fps=40).start_serving()
    second = MjpegCamera(port=first.port, frames=12, fps=40, start=100, once=True)
    out = StreamOutputs(tmp_path, segment_s=0.15, fps=10)
    run = stream(detector, first.url, no_drop=True, outputs=out, **FAST)
    seen = []
    try:
        for r in run:
            seen.append(r)
            if r.frame == 8 and second.server is None:
                first.stop()
                second.start_serving()
    finally:
        first.stop()
        second.stop()
    numbers = [frame_number(r) for r in seen]
    assert numbers[:9] == list(range(9))
    assert [n for n in numbers if n >= 100] == list(range(100, 112)), numbers  # every frame after the restart
    st = run.stats[0]
    assert st.reconnects >= 1 and st.processed == len(seen) == st.frames_in and st.dropped == 0

    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(seen)
    records = [json.loads(x) for x in lines]
    assert [r["frame"] for r in records] == list(range(len(seen)))
    found = [{d["name"] for d in r["detections"]} for r in records]
    assert sum({"circle", "square"} <= f for f in found) >= 0.8 * len(found), found

    segments = sorted((tmp_path / "video").iterdir())
    assert len(segments) >= 2 and not [p for p in segments if ".part" in p.name]
    total = 0
    for p in segments:
        cap = cv2.VideoCapture(str(p))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        assert n > 0, p
        total += n
    assert total == len(seen)


def test_latest_frame_mode_drops_stale_frames(detector):
    import time

    with MjpegCamera(frames=40, fps=200, once=True) as cam:
        run = stream(detector, cam.url, **FAST)
        got = []
        for r in run:
            got.append(frame_number(r))
            time.sleep(0.05)  # a slow consumer: the reader keeps only the newest frame
    st = run.stats[0]
    assert st.frames_in == 40 and st.dropped > 0 and st.processed + st.dropped == st.frames_in
    assert got == sorted(got) and len(got) < 40


def test_four_streams_no_drop_equal_each_alone(detector):
    """Four cameras at once (their frames batched into shared detector calls) give, frame for frame, what
    each camera gives alone."""
    from helpers.runtime_data import assert_same_detections

    def run(seeds):
        cams = [MjpegCamera(seed=s, frames=12, fps=60, once=True).start_serving() for s in seeds]
        try:
            got = {(r.name, r.frame): r for r in drain(stream(detector, [c.url for c in cams], no_drop=True, **FAST), 15)}
        finally:
            for c in cams:
                c.stop()
        return {(seeds[[c.url for c in cams].index(n)], f): r for (n, f), r in got.items()}

    together = run([0, 1, 2, 3])
    alone = {k: v for s in range(4) for k, v in run([s]).items()}
    assert sorted(together) == sorted(alone) == [(s, f) for s in range(4) for f in range(12)]
    for key, r in alone.items():
        assert frame_number(together[key]) == frame_number(r) == key[1]
        assert len(r.detections) >= 2, key
        assert_same_detections(together[key].detections, r.detections)


def test_vid_stride_keeps_every_kth_frame(detector):
    with MjpegCamera(frames=12, fps=60, once=True) as cam:
        got = [frame_number(r) for r in drain(stream(detector, cam.url, vid_stride=3, no_drop=True, **FAST), 20)]
    assert got == [0, 3, 6, 9]


def test_the_top_level_detector_streams_with_tracks_like_the_function():
    """`yolor_deploy.Detector(...).stream(source, track=True)` (the issue's API) gives what
    `streams.runner.stream(runtime Detector, ...)` gives: the same frames, detections and track ids."""
    import yolor_deploy
    from helpers.runtime_data import assert_same_detections

    def run(make):
        with MjpegCamera(seed=1, frames=10, fps=60, once=True) as cam:
            return drain(make(cam.url), 20)

    top = yolor_deploy.Detector(trained_onnx(256), imgsz=256)
    assert isinstance(top, Detector)
    method = run(lambda url: top.stream(url, track=True, no_drop=True, **FAST))
    function = run(lambda url: stream(Detector(trained_onnx(256), imgsz=256), url, track=True, no_drop=True, **FAST))
    assert [frame_number(r) for r in method] == [frame_number(r) for r in function] == list(range(10))
    for a, b in zip(method, function):
        assert_same_detections(a.detections, b.detections)
        assert list(a.track_ids) == list(b.track_ids)
    assert len({t for r in method for t in r.track_ids if t >= 0}) >= 2  # tracks were made
