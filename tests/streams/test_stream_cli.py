"""`yolor-deploy stream` as a user runs it: a subprocess on a live MJPEG camera, ended by SIGTERM (clean:
stats written, every video segment closed and playable, JSON Lines whole), and one-line errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2

from helpers.mjpeg_server import MjpegCamera
from helpers.trained_onnx import trained_onnx
from yolor_deploy.cli.main import main

SRC = Path(__file__).parents[2] / "src"


def test_sigterm_ends_a_run_cleanly(tmp_path):
    model = trained_onnx(256)
    with MjpegCamera(frames=100_000, fps=30) as cam:
        env = dict(os.environ, PYTHONPATH=str(SRC))
        p = subprocess.Popen([sys.executable, "-m", "yolor_deploy.cli.main", "stream", str(model), cam.url,
                              "--imgsz", "256", "--track", "--segment", "0.3", "--save-dir", str(tmp_path), "-q",
                              "--save-frames"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        jsonl = tmp_path / "results.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 15):
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    records = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert len(records) >= 15 and all("track_id" in d for r in records for d in r["detections"])
    # one circle, one identity (the model's weaker second-class boxes, score < 0.6, start no track)
    ids = {d["track_id"] for r in records for d in r["detections"] if d["name"] == "circle" and d["score"] >= 0.6}
    assert len(ids) == 1 and -1 not in ids, ids
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats[0]["processed"] == len(records)
    saved = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert saved == [f"00_http_127_0_0_1_{cam.port}_stream_mjpg_{r['frame']:06d}.jpg" for r in records], saved[:3]
    segments = sorted((tmp_path / "video").iterdir())
    assert segments and all(".part" not in s.name for s in segments), segments
    for s in segments:
        assert cv2.VideoCapture(str(s)).read()[0], s


def test_missing_source_is_one_line_error(tmp_path, capsys):
    assert main(["stream", str(trained_onnx(256)), str(tmp_path / "nope.mp4"), "--save-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.mp4" in err[0] and "not a stream URL" in err[0], err
    assert not (tmp_path / "results.jsonl").exists()


def test_unreachable_stream_gives_up_with_one_line(tmp_path, capsys):
    from helpers.mjpeg_server import free_port

    url = f"http://127.0.0.1:{free_port()}/x.mjpg"
    rc = main(["stream", str(trained_onnx(256)), url, "--retries", "2", "--backoff", "0.05", "--timeout", "2",
               "--save-dir", str(tmp_path), "--no-save-video"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].count("gave up after 2 reconnection tries") == 1 and url in err[-1], err
