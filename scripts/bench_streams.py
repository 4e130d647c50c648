"""Throughput and latency of `yolor-deploy stream` on this machine: 1 and 4 streams, pipelined (a reader
thread per stream, every stream's frame in one detector call: `yolor_deploy.streams`) against sequential
(one thread: read a frame from each stream, then detect), every frame processed (--no-drop), the sources
synthetic MJPG videos of moving shapes read as fast as they decode. Latency: capture -> result.

usage: PYTHONPATH=src python scripts/bench_streams.py [--model M.onnx] [--frames 120] [--imgsz 256] [--threads N]
(no --model: the bundled trained shapes checkpoint exported to a temporary dynamic ONNX; needs torch)."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from yolor_deploy.runtime import Detector
from yolor_deploy.streams.reader import open_capture
from yolor_deploy.streams.runner import stream
from yolor_deploy.sysinfo import cpu_line


def write_video(path: Path, seed: int, frames: int, size: int = 256) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (size, size))
    for i in range(frames):
        im = np.full((size, size, 3), (200 - 20 * (seed % 3), 190, 180), np.uint8)
        cv2.circle(im, (40 + (3 * i + 17 * seed) % (size - 80), 80), 28, (30, 30, 200), -1)
        y = 40 + (3 * i + 29 * seed) % (size - 110)
        cv2.rectangle(im, (150, y), (210, y + 60), (200, 60, 20), -1)
        out.write(im)
    out.release()
    return path


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def pipelined(det: Detector, videos: list[Path]) -> dict:
    t0 = time.perf_counter()
    run = stream(det, [str(v) for v in videos], no_drop=True)
    n = sum(1 for _ in run)
    wall = time.perf_counter() - t0
    lat = [x for s in run.stats for x in s.latency_ms]
    return {"frames": n, "fps": n / wall, "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90)}


def sequential(det: Detector, videos: list[Path]) -> dict:
    caps = [open_capture(str(v)) for v in videos]
    det.batch_size = len(videos)
    lat: list[float] = []
    n, t0 = 0, time.perf_counter()
    while True:
        got = []
        for c in caps:
            ok, im = c.read()
            if ok:
                got.append((time.monotonic(), im))
        if not got:
            break
        det([im for _, im in got])
        done = time.monotonic()
        lat += [(done - t) * 1000 for t, _ in got]
        n += len(got)
    wall = time.perf_counter() - t0
    return {"frames": n, "fps": n / wall, "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--frames", type=int, default=120, help="frames per stream")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    model = args.model
    if model is None:
        from yolor_deploy.assets import trained_checkpoint
        from yolor_deploy.export import export_onnx

        model = tmp / "shapes.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(trained_checkpoint(), model, imgsz=(args.imgsz, args.imgsz), dynamic=True, verify=False)
    videos = [write_video(tmp / f"s{i}.avi", i, args.frames) for i in range(4)]
    print(cpu_line())
    rows = []
    for n in (1, 4):
        for name, fn in (("sequential", sequential), ("pipelined", pipelined)):
            det = Detector(model, imgsz=args.imgsz, threads=args.threads)
            det(videos and [np.zeros((args.imgsz, args.imgsz, 3), np.uint8)] * n)  # warm-up
            r = {"streams": n, "mode": name, **fn(det, videos[:n])}
            rows.append(r)
            print(f"{n} stream(s) {name:10s}: {r['frames']} frames, {r['fps']:.1f} fps, "
                  f"latency p50 {r['p50_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
