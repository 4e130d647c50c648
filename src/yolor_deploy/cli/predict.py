"""`yolor-deploy predict`: detect objects in images, folders, globs and videos."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ._common import add_backend_arguments, add_inference_size_argument, runtime_hint, warnings_to_stderr

HELP = "detect objects in images and videos with an ONNX model or a checkpoint"
DESCRIPTION = """\
Detect objects with an exported ONNX model (no PyTorch needed) or a PyTorch checkpoint; both go
through the same letterbox, NMS and box scaling (upstream detect.py conventions).

SOURCE: image files, folders (their images and videos), globs ('imgs/**/*.jpg', quoted) or videos.
Writes into --save-dir: annotated images and videos (unless --no-save-img), VIDEO.json with
per-frame results for every video, labels/*.txt with --save-txt, predictions.json (COCO results:
image_id, category_id, bbox xywh, score) with --save-json. Unreadable images are skipped with a
warning. Defaults are upstream paper-branch detect.py's (conf 0.25, iou 0.45); main-branch
detect.py used 0.4 / 0.5.

--engine ray (pip install 'yolor-deploy[ray]') writes the same files, computed by a pool of Ray actors
(one model load each) in shards of --shard-size sources kept in SAVE_DIR/.shards: rerunning the command into
the same --save-dir resumes, skipping complete shards. Sources may also be URIs pyarrow reads (s3://, gs://,
...). Without --ray-address (or $RAY_ADDRESS) a local Ray instance is started for the run. On a cluster, the
model, local sources and --save-dir must be at the same path on every node (a shared filesystem).

examples:
  yolor-deploy predict yolor-p6.onnx images/ --save-json --save-txt
  yolor-deploy predict yolor_p6.pt --cfg yolor_p6 clip.mp4 --imgsz 1280
  yolor-deploy predict --url grpc://127.0.0.1:8001 --model yolor-p6 images/
  yolor-deploy predict yolor-p6.onnx /data/images --engine ray --num-workers 2 --save-dir runs/big --save-json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model: .onnx export or .pt checkpoint (with --url: the first source)")
    p.add_argument("source", nargs="*", help="image files, folders, globs or video files")
    p.add_argument("--url", default=None, metavar="URL",
                   help="run the model on an Open Inference Protocol server (serve, Triton): http://HOST:PORT or "
                        "grpc://HOST:PORT, with --model NAME; letterbox and NMS run here")
    p.add_argument("--model", dest="remote_model", default=None, metavar="NAME",
                   help="--url: the model's name on the server")
    p.add_argument("--conf-thres", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument("--iou-thres", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    add_inference_size_argument(p)
    p.add_argument("--classes", type=int, nargs="+", metavar="C", help="keep only these class indices")
    p.add_argument("--agnostic-nms", action="store_true", help="class-agnostic NMS")
    p.add_argument("--max-det", type=int, default=300, help="detections per image at most (default 300)")
    p.add_argument("--save-dir", type=Path, default=None,
                   help="output folder (default: runs/predict/exp, exp2, ... whichever is new)")
    p.add_argument("--save-json", action="store_true", help="write predictions.json (COCO results)")
    p.add_argument("--save-txt", action="store_true", help="write YOLO labels to labels/*.txt")
    p.add_argument("--save-conf", action="store_true", help="add the score to --save-txt lines")
    p.add_argument("--no-save-img", action="store_true", help="do not write annotated images/videos")
    p.add_argument("--batch", type=int, default=1, help="images per inference call (default 1)")
    p.add_argument("--mode", choices=("latency", "throughput"), default="latency",
                   help="latency: one image at a time on all cores; throughput: several images in flight "
                        "(cores // streams threads each), same detections, more images/s on a folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per image (the summary is still printed)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="refuse images and video frames above N decoded pixels, checked from the file header "
                        "before decoding (default 268435456 = 16384x16384; also $YOLOR_MAX_IMAGE_PIXELS)")
    add_backend_arguments(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: a pool of Ray actors, resumable shards")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="--engine ray: the cluster to use (e.g. ray://head:10001 or auto; default $RAY_ADDRESS, "
                        "else a local instance started for the run)")
    p.add_argument("--num-workers", type=int, default=None, metavar="N",
                   help="--engine ray: model actors (default: one per node; threads each: CPUs // N)")
    p.add_argument("--shard-size", type=int, default=None, metavar="N",
                   help="--engine ray: sources per shard, the unit of retry and resume (default 64)")


def default_save_dir(root: Path = Path("runs/predict")) -> Path:
    """root/exp, then exp2, exp3, ... : the first that does not exist yet."""
    k = 1
    while (root / (f"exp{k}" if k > 1 else "exp")).exists():
        k += 1
    return root / (f"exp{k}" if k > 1 else "exp")


def _count_work(sources) -> int:
    from ..runtime.inputs.opencv import cv2

    total = 0
    for s in sources:
        if s.kind == "video":
            cap = cv2.VideoCapture(str(s.path))
            total += max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 1)
            cap.release()
        else:
            total += 1
    return total


def _check_url(args: argparse.Namespace) -> None:
    """--url and --model together; with --url every positional is a source."""
    from ..errors import InputError

    if (args.url is None) != (args.remote_model is None):
        raise InputError("--url and --model go together (a server URL and the model's name there)")
    if args.url is not None:
        args.source = [args.model, *args.source]
        if args.engine == "ray":
            raise InputError("--url: only with --engine local (the server does the model calls)")
    elif not args.source:
        raise InputError("source: give at least one image file, folder, glob or video after the model")


def run(args: argparse.Namespace) -> int:
    from contextlib import closing

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..errors import InputError
    from ..runtime import Detector, resolve_sources
    from ..runtime.inputs.prefetch import prefetch
    from ..runtime.inputs.sources import iter_frames
    from ..runtime.results.writer import ResultWriter

    err = Console(stderr=True)
    _check_url(args)
    if args.max_pixels is not None:
        from ..runtime.inputs.opencv import set_max_pixels

        if args.max_pixels < 1:
            raise InputError(f"--max-pixels {args.max_pixels}: must be a positive number of pixels")
        set_max_pixels(args.max_pixels)  # before any image is read: OpenCV's own cap follows
    if args.engine == "ray":
        return _run_ray(args)
    for flag in ("ray_address", "num_workers", "shard_size"):
        if getattr(args, flag) is not None:
            raise InputError(f"--{flag.replace('_', '-')}: only with --engine ray")
    with warnings_to_stderr():
        sources = resolve_sources(args.source)
        remote = {"model": args.remote_model} if args.url else \
            {"providers": args.providers, "threads": args.threads, "cfg": args.cfg, "backend": args.backend,
             "hint": runtime_hint(args, args.model)}
        det = Detector(args.url or args.model, conf_thres=args.conf_thres, iou_thres=args.iou_thres,
                       max_det=args.max_det, classes=args.classes, agnostic=args.agnostic_nms, imgsz=args.imgsz,
                       batch_size=args.batch, mode=args.mode, **remote)
        writer = ResultWriter(args.save_dir or default_save_dir(), save_img=not args.no_save_img,
                              save_txt=args.save_txt, save_conf=args.save_conf, save_json=args.save_json)
        skipped: list[str] = []

        def warn(msg: str) -> None:
            skipped.append(msg)
            print(f"warning: {msg}", file=sys.stderr)

        total = _count_work(sources)
        counts: Counter = Counter()
        n_done = 0
        progress = Progress(TextColumn("[bold]predict"), BarColumn(), MofNCompleteColumn(),
                            TimeRemainingColumn(), console=err, transient=True,
                            disable=total < 2 or not err.is_terminal)
        try:
            with progress:
                task = progress.add_task("predict", total=total)
                # decoding runs ahead in a thread (one batch waiting): reading overlaps inference
                ahead = prefetch(iter_frames(sources, warn), depth=max(det.batch_size, 1) * 2)
                with closing(ahead):  # an error below stops the reading thread at once
                    for frames, results, ms in det.detect_batches(ahead, lambda f: f.image):
                        for k, (frame, d) in enumerate(zip(frames, results)):
                            writer.add(frame, d)
                            counts.update(d.counts())
                            if not args.quiet:
                                print(_image_line(frame, n_done + k + 1, total, d, ms))
                        n_done += len(frames)
                        progress.advance(task, len(frames))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        if n_done == 0:
            raise InputError(f"no readable image or video frame among {len(sources)} input(s)")
        _print_summary(det, n_done, skipped, counts, writer)
    return 0


def _image_line(frame, i: int, total: int, d, ms: float) -> str:
    """`image 3/20 path: 2 circle, 1 square, 12.3 ms` (upstream detect.py's per-image line)."""
    found = ", ".join(f"{n} {name}" for name, n in d.counts().most_common()) or "no detections"
    where = f"frame {frame.frame + 1}" if frame.frame is not None else "image"
    return f"{where} {i}/{total} {frame.source.path}: {found}, {ms:.1f} ms"


def _print_summary(det, n_done: int, skipped: list[str], counts: Counter, writer) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    ms = det.timings.per_image_ms()
    table = Table(title="predict summary", show_header=True)
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("backend", escape(det.backend.name))
    shape = det.last_input_shape
    used = f"{shape[2]}x{shape[3]}" if shape is not None else f"{det.imgsz[0]}x{det.imgsz[1]}"
    how = f" (long side {max(det.imgsz)}, padded to x{det.pad_multiple})" if det.auto else ""
    table.add_row("input (last batch)" if det.auto else "input", used + how)
    table.add_row("images / frames", str(n_done))
    if skipped:
        table.add_row("skipped", str(len(skipped)))
    # classes that were detected, most frequent first (an 80-class model would list 80 zeros)
    for name, n in counts.most_common():
        table.add_row(f"  {escape(name)}", str(n))
    table.add_row("detections", str(sum(counts.values())))
    for stage in ("pre", "infer", "post"):
        table.add_row(f"{stage} ms / image", f"{ms[stage]:.1f}")
    Console().print(table)
    print(f"results saved to {writer.save_dir}")


def _run_ray(args: argparse.Namespace) -> int:
    from ..distributed import predict_with_ray
    from ..distributed.ray_predict import DEFAULT_SHARD_SIZE

    detector = dict(providers=args.providers, conf_thres=args.conf_thres, iou_thres=args.iou_thres,
                    max_det=args.max_det, classes=args.classes, agnostic=args.agnostic_nms, imgsz=args.imgsz,
                    batch_size=args.batch, threads=args.threads, cfg=args.cfg, backend=args.backend,
                    hint=runtime_hint(args, args.model), mode=args.mode)
    shard_size = DEFAULT_SHARD_SIZE if args.shard_size is None else args.shard_size
    with warnings_to_stderr():
        result = predict_with_ray(args.model, args.source, args.save_dir or default_save_dir(), detector,
                                  save_img=not args.no_save_img, save_txt=args.save_txt, save_conf=args.save_conf,
                                  save_json=args.save_json, num_workers=args.num_workers,
                                  ray_address=args.ray_address, shard_size=shard_size,
                                  max_pixels=args.max_pixels)
    for msg in result.warnings:
        print(f"warning: {msg}", file=sys.stderr)
    _print_ray_summary(result)
    return 0


def _print_ray_summary(r) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="predict summary (ray)", show_header=True)
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("backend", escape(r.backend))
    table.add_row("input", f"{r.imgsz[0]}x{r.imgsz[1]}")
    if r.workers:
        table.add_row("workers x threads", f"{r.workers} x {r.threads}")
    table.add_row("shards run / reused", f"{r.shards_run} / {r.shards_reused}")
    table.add_row("images / frames", str(r.frames))
    if r.warnings:
        table.add_row("skipped", str(len(r.warnings)))
    for name, n in r.counts.most_common():
        table.add_row(f"  {escape(name)}", str(n))
    table.add_row("detections", str(sum(r.counts.values())))
    for stage in ("pre", "infer", "post"):
        table.add_row(f"{stage} ms / image", f"{r.stage_ms.get(stage, 0.0):.1f}")
    if r.frames_run:
        table.add_row("images / s (this run)", f"{r.frames_run / max(r.seconds, 1e-9):.1f}")
    Console().print(table)
    print(f"results saved to {r.save_dir}")
