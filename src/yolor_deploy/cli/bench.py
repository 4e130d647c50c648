"""`yolor-deploy bench`: latency and throughput split into pre-process, inference and post-process."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_backend_arguments, add_inference_size_argument, runtime_hint

HELP = "measure latency (p50/p90/p99) per stage; compare a checkpoint with its ONNX export"
DESCRIPTION = """\
Time the full detection path (letterbox + normalise, model, NMS + box scaling) on one image
repeated --batch times, per stage, after --warmup untimed runs. Given several models (e.g. a .pt
checkpoint and its .onnx export), runs them interleaved in the same process, so machine load hits
them alike, and prints the latency ratio between them. --backend onnxruntime,openvino times each
model on each backend.

The input is --image, or a seeded synthetic 1280x720 scene (so the letterbox really resizes).

examples:
  yolor-deploy bench yolor-p6.onnx --imgsz 640 --runs 50
  yolor-deploy bench yolor-p6.pt yolor-p6.onnx --threads 2
  yolor-deploy bench yolor-p6.onnx --backend onnxruntime,openvino
"""

STAGES = ("pre", "infer", "post", "total")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="+", help="one or more models (.onnx, OpenVINO .xml, or .pt) to time")
    add_inference_size_argument(p)
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument("--runs", type=int, default=30, help="timed runs (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--conf-thres", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument("--image", type=Path, default=None, help="time on this image instead of a synthetic one")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    add_backend_arguments(p)


def synthetic_image(h: int = 720, w: int = 1280, seed: int = 0):
    """ndarray[h, w, 3] uint8 BGR: a gradient with random filled shapes and noise, seeded."""
    import numpy as np

    from ..runtime.inputs.opencv import cv2

    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(40, 200, w, dtype=np.float32)[None, :, None].astype(np.uint8)
    for _ in range(12):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        s = int(rng.integers(20, 200))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + s, y + s // 2 + 10), color, -1)
        else:
            cv2.circle(img, (x, y), s // 2, color, -1)
    noise = rng.integers(-8, 9, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def stats_ms(samples) -> dict[str, float]:
    """p50/p90/p99/mean in ms of samples in seconds."""
    import numpy as np

    a = np.asarray(samples, dtype=np.float64) * 1000
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean())}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..errors import InputError
    from ..fs import write_json
    from ..runtime import Detector, read_image
    from ._common import progress_bar, warnings_to_stderr, working

    if args.runs < 1 or args.batch < 1 or args.warmup < 0:
        raise InputError("--runs and --batch must be >= 1, --warmup >= 0")
    with warnings_to_stderr():
        image = read_image(args.image) if args.image else synthetic_image()
        runs = [(m, b) for m in args.model for b in _backends(args.backend)]
        with working(f"loading {len(runs)} model{'s' * (len(runs) > 1)} ..."):
            detectors = [Detector(m, providers=args.providers, conf_thres=args.conf_thres, imgsz=args.imgsz,
                                  batch_size=args.batch, threads=args.threads, cfg=args.cfg, backend=b,
                                  hint=runtime_hint(args, m))
                         for m, b in runs]
        samples = {i: {s: [] for s in STAGES} for i in range(len(detectors))}
        with progress_bar("bench", unit="runs") as bar:
            task = bar.add_task("bench", total=(args.warmup + args.runs) * len(detectors))
            for r in range(args.warmup + args.runs):
                for i, det in enumerate(detectors):  # interleaved: drift and load hit every model alike
                    det([image] * det.batch_size)
                    bar.advance(task)
                    if r >= args.warmup:
                        t = det.last
                        for s, v in (("pre", t.pre), ("infer", t.infer), ("post", t.post)):
                            samples[i][s].append(v)
                        samples[i]["total"].append(t.pre + t.infer + t.post)
    report = _report(args, image, [m for m, _ in runs], detectors, samples)
    _print(Console(), report)
    if args.json:
        write_json(args.json, report, indent=2)
        print(f"numbers written to {args.json}")
    return 0


def _backends(spec: str) -> list[str]:
    """--backend: one name, or several comma-separated (each model is timed on each)."""
    names = [b.strip() for b in (spec or "auto").split(",") if b.strip()]
    return names or ["auto"]


def _report(args, image, paths, detectors, samples) -> dict:
    models = []
    for i, (path, det) in enumerate(zip(paths, detectors)):
        st = {s: stats_ms(samples[i][s]) for s in STAGES}
        models.append({
            "model": str(path), "backend": det.backend.name, "input": list(det.last_input_shape),
            "pad": f"auto x{det.pad_multiple}" if det.auto else "fixed", "batch": det.batch_size,
            "load_s": round(det.backend.load_seconds, 3), "stages_ms": st,
            "throughput_img_s": det.batch_size / (st["total"]["mean"] / 1000),
            "pre_post_pct_of_infer": 100 * (st["pre"]["p50"] + st["post"]["p50"]) / st["infer"]["p50"],
        })
    return {"image": str(args.image) if args.image else "a synthetic image", "image_hw": list(image.shape[:2]),
            "runs": args.runs, "warmup": args.warmup, "threads": args.threads, "models": models}


def _print(console, report: dict) -> None:
    from rich.table import Table

    for m in report["models"]:
        console.print(f"\n{m['model']}  [{m['backend']}]", soft_wrap=True, highlight=False, markup=False)
        t = Table()
        for col in ("stage (ms)", "p50", "p90", "p99", "mean"):
            t.add_column(col, justify="right" if col != "stage (ms)" else "left")
        for s in STAGES:
            v = m["stages_ms"][s]
            t.add_row(s, *(f"{v[k]:.2f}" for k in ("p50", "p90", "p99", "mean")))
        console.print(t)
        b, _, h, w = m["input"]
        console.print(f"input {b}x3x{h}x{w} ({m['pad']}), {report['runs']} runs on {report['image']} "
                      f"({report['image_hw'][1]}x{report['image_hw'][0]}); "
                      f"load {m['load_s']:.2f} s; throughput {m['throughput_img_s']:.1f} img/s; "
                      f"pre+post = {m['pre_post_pct_of_infer']:.1f}% of inference (p50)", soft_wrap=True,
                      markup=False)
    base = report["models"][0]
    for m in report["models"][1:]:
        r_tot = base["stages_ms"]["total"]["p50"] / m["stages_ms"]["total"]["p50"]
        r_inf = base["stages_ms"]["infer"]["p50"] / m["stages_ms"]["infer"]["p50"]
        console.print(f"ratio {base['model']} [{base['backend']}] / {m['model']} [{m['backend']}]: "
                      f"total p50 {r_tot:.2f}x, inference p50 {r_inf:.2f}x "
                      "(>1: the second is faster; same run, interleaved)",
                      soft_wrap=True, highlight=False, markup=False)
