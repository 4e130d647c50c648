"""`yolor-deploy stream`: detect (and track) on live cameras and network streams."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from ._common import add_backend_arguments, add_inference_size_argument, runtime_hint, warnings_to_stderr

HELP = "detect (and track) on live streams: rtsp/rtmp/http(s) MJPEG or HLS, webcams, a .txt/.streams list"
DESCRIPTION = """\
Read every SOURCE in its own thread (reconnecting a dropped stream with exponential backoff), stack the
latest frame of each into one inference (a dynamic-batch model), and write, as results come:
  SAVE_DIR/results.jsonl        one line per processed frame (stream, frame, capture time, latency,
                                detections with track ids under --track), flushed per line
  SAVE_DIR/video/NN_NAME_nnnn.avi  annotated video per stream, a new segment every --segment seconds,
                                each renamed into place when closed (a killed run leaves playable files)
  SAVE_DIR/frames/              annotated JPEGs (--save-frames)
  SAVE_DIR/stats.json           per-stream frames in / processed / dropped, reconnects, latency p50/p90
SIGINT / SIGTERM end the run cleanly (segments closed, stats written). By default a slow model processes
the newest frame of each stream and drops stale ones (counted); --no-drop processes every frame (the
readers wait: back-pressure).

examples:
  yolor-deploy stream model.onnx rtsp://cam1/stream http://cam2/video.mjpg --track
  yolor-deploy stream model.onnx 0 --no-save-video          (webcam 0, JSON Lines only)
  yolor-deploy stream model.onnx cams.streams --vid-stride 2 --segment 60
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model: .onnx / .xml export or .pt checkpoint")
    p.add_argument("source", nargs="+", help="rtsp://, rtmp://, http(s):// URLs, webcam indices, video files, "
                                             "or .txt/.streams files listing them")
    p.add_argument("--conf-thres", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    add_inference_size_argument(p)
    add_backend_arguments(p)
    p.add_argument("--track", action="store_true", help="ByteTrack: a track id per box (JSON and pictures)")
    p.add_argument("--vid-stride", type=int, default=1, metavar="K", help="keep every K-th frame (default 1)")
    p.add_argument("--no-drop", action="store_true", help="process every frame (readers wait) instead of the latest")
    p.add_argument("--queue-size", type=int, default=8, metavar="N", help="frames buffered per stream with --no-drop")
    p.add_argument("--retries", type=int, default=5, help="reconnection tries in a row before a stream is given up")
    p.add_argument("--backoff", type=float, default=0.5, metavar="S", help="first reconnection wait, doubled each try")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="open/read timeout per stream")
    p.add_argument("--save-dir", type=Path, default=Path("runs/stream"), help="output folder (default runs/stream)")
    p.add_argument("--segment", type=float, default=10.0, metavar="S", help="video segment length (default 10 s)")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate written into the video segments")
    p.add_argument("--no-save-video", action="store_true", help="no annotated video")
    p.add_argument("--save-frames", action="store_true", help="also write every annotated frame as a JPEG")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N processed frames")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per frame")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..fs import write_json
    from ..runtime.detector import Detector
    from ..streams.runner import StreamOutputs, stream

    for name in ("vid_stride", "queue_size"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    with warnings_to_stderr():
        det = Detector(args.model, providers=args.providers, conf_thres=args.conf_thres, iou_thres=args.iou_thres,
                       imgsz=args.imgsz, threads=args.threads, cfg=args.cfg, backend=args.backend,
                       hint=runtime_hint(args, args.model))
        outputs = StreamOutputs(args.save_dir, video=not args.no_save_video, segment_s=args.segment, fps=args.fps,
                                save_frames=args.save_frames)
        runner = stream(det, list(args.source), track=args.track, vid_stride=args.vid_stride, no_drop=args.no_drop,
                        outputs=outputs, queue_size=args.queue_size, retries=args.retries, backoff=args.backoff,
                        timeout_s=args.timeout)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: runner.stop())
        n = 0
        for r in runner:
            n += 1
            if not args.quiet:
                print(f"{r.name} #{r.frame}: {len(r.detections)} detections, {r.latency_ms:.0f} ms", flush=True)
            if args.max_frames and n >= args.max_frames:
                runner.stop()
        stats = [s.summary() for s in runner.stats]
        write_json(args.save_dir / "stats.json", stats, indent=1)
        print(json.dumps(stats), flush=True)
        errors = [r.error for r in runner.readers if r.error]
        if not n:
            raise InputError("; ".join(errors) or "no frame came from any source")
        for e in errors:
            print(f"stream: {e}", file=sys.stderr)
        return 0
