"""`yolor-deploy serve`: an HTTP detection service over a model (the `serve` extra)."""
from __future__ import annotations

import argparse

from ._common import add_backend_arguments, add_inference_size_argument, runtime_hint

HELP = "serve a model over HTTP: detect, health/ready probes, Prometheus metrics, dynamic batching"
DESCRIPTION = """\
Serve a model (.onnx, OpenVINO .xml or .pt checkpoint, run as `predict` runs it) over HTTP with
FastAPI + uvicorn (pip install "yolor-deploy[serve]"). Concurrent requests are gathered into one
model call (up to --max-batch images, waiting at most --max-wait-ms) when the model takes a dynamic
batch; results equal `predict`'s. Stops gracefully on SIGTERM/SIGINT (requests in flight finish).

--engine ray (pip install "yolor-deploy[ray]") serves the same HTTP API as a Ray Serve application:
the model on --replicas N replicas, batching by Ray Serve's @serve.batch (--max-batch, --max-wait-ms).
Without --ray-address (or $RAY_ADDRESS) a local Ray sized to this machine is started and stopped.

endpoints:
  GET  /health      alive                      GET /ready    model loaded and warmed up (else 503)
  GET  /v1/model    classes, size, precision, NMS, source hash, version, batching
  POST /v1/detect   multipart field `image` (repeat for several); query conf, iou, max_det, classes
  GET  /metrics     Prometheus                 GET /docs     OpenAPI docs
  /v2/...           the Open Inference Protocol (KServe v2, what tritonclient speaks): health, model metadata
                    and config, POST /v2/models/NAME/infer (JSON or binary tensors); gRPC on --grpc-port

examples:
  yolor-deploy serve shapes-dynamic.onnx --port 8000 --max-batch 8
  yolor-deploy serve shapes-dynamic.onnx --engine ray --replicas 2 --port 8000
  curl -F image=@shapes.jpg 'http://127.0.0.1:8000/v1/detect?conf=0.4&classes=0,2'
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model: .onnx (export with --dynamic to batch requests), .xml IR or .pt")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--grpc-port", type=int, default=None, metavar="PORT",
                   help="also serve the Open Inference Protocol over gRPC on this port (0: a free one; --engine local)")
    p.add_argument("--max-batch", type=int, default=8, help="images per model call at most (default 8; 1: no batching)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long the oldest waiting request waits for others to join its batch (default 5)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="images waiting at most, both engines (a request of k images counts k; images are what "
                        "hold memory); a request that would pass it is a 503 with Retry-After (default 64; at "
                        "least --max-images)")
    p.add_argument("--workers", type=int, default=None,
                   help="model calls running at once, each in its own thread (default 1, or one per core with "
                        "--mode throughput; --engine local)")
    p.add_argument("--mode", choices=("latency", "throughput"), default="latency",
                   help="latency: one model call at a time on all cores (default); throughput: --workers calls "
                        "at once, the cores shared among them (OpenVINO: its THROUGHPUT hint with that many "
                        "streams): more images/s under concurrent load (--engine local; with --engine ray, "
                        "scale with --replicas)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: a Ray Serve application with --replicas replicas")
    p.add_argument("--replicas", type=int, default=None,
                   help="--engine ray: model replicas (default 1; threads each: CPUs // N)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="--engine ray: the cluster to deploy on (e.g. auto or head:6379; default $RAY_ADDRESS, else "
                        "a local Ray started and stopped here)")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per-request limit; beyond, 504 (default 30)")
    p.add_argument("--max-body-mb", type=float, default=32.0, help="request body cap in MiB; beyond, 413 (default 32)")
    p.add_argument("--max-images", type=int, default=16, help="images per request at most; beyond, 413 (default 16)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="decoded pixels per image at most, checked from the header before decoding; beyond, 413 "
                        "(default 268435456 = 16384x16384; also $YOLOR_MAX_IMAGE_PIXELS)")
    p.add_argument("--max-pixels-in-flight", type=int, default=None, metavar="N",
                   help="decoded pixels of all requests being handled at once, admitted from the images' headers "
                        "before decoding (3 bytes each): a request over it alone is 413, one that does not fit now "
                        "503 + Retry-After (default: --max-pixels, at least 67108864)")
    p.add_argument("--max-header-kb", type=float, default=64.0,
                   help="request line + headers at most, in KiB; beyond, 431 (414 for the request line) (default 64)")
    p.add_argument("--header-timeout-s", type=float, default=10.0,
                   help="a request's line and headers must arrive within this; beyond, 408 and closed (default 10)")
    p.add_argument("--body-timeout-s", type=float, default=60.0,
                   help="a request's body must arrive within this of its first byte; beyond, 408 (default 60)")
    p.add_argument("--conf-thres", type=float, default=0.25, help="default score threshold (a request's conf wins)")
    p.add_argument("--iou-thres", type=float, default=0.45, help="default NMS IoU threshold (a request's iou wins)")
    p.add_argument("--max-det", type=int, default=300, help="default detections per image at most")
    add_inference_size_argument(p)
    add_backend_arguments(p)


def _check_numbers(args: argparse.Namespace) -> None:
    """One line naming the first option out of range."""
    from ..errors import InputError
    from ..serve.inputs import MAX_DET_LIMIT

    checks = {
        "--port": (args.port, 0 <= args.port <= 65535, "0..65535"),
        "--grpc-port": (args.grpc_port, args.grpc_port is None or 0 <= args.grpc_port <= 65535, "0..65535"),
        "--max-batch": (args.max_batch, 1 <= args.max_batch <= 1024, "1..1024"),
        "--max-wait-ms": (args.max_wait_ms, 0 <= args.max_wait_ms <= 60_000, "0..60000"),
        "--max-queue": (args.max_queue, args.max_queue >= 1, "at least 1"),
        "--workers": (args.workers, args.workers is None or 1 <= args.workers <= 64, "1..64"),
        "--replicas": (args.replicas, args.replicas is None or 1 <= args.replicas <= 1024, "1..1024"),
        "--timeout-s": (args.timeout_s, 0 < args.timeout_s <= 3600, "above 0, at most 3600"),
        "--max-body-mb": (args.max_body_mb, 0.001 <= args.max_body_mb <= 4096, "0.001..4096"),
        "--max-images": (args.max_images, args.max_images >= 1, "at least 1"),
        "--max-pixels": (args.max_pixels, args.max_pixels is None or args.max_pixels >= 1, "at least 1"),
        "--max-pixels-in-flight": (args.max_pixels_in_flight,
                                   args.max_pixels_in_flight is None or args.max_pixels_in_flight >= 1, "at least 1"),
        "--max-header-kb": (args.max_header_kb, 1 <= args.max_header_kb <= 16384, "1..16384"),
        "--header-timeout-s": (args.header_timeout_s, 0 < args.header_timeout_s <= 3600, "above 0, at most 3600"),
        "--body-timeout-s": (args.body_timeout_s, 0 < args.body_timeout_s <= 3600, "above 0, at most 3600"),
        "--conf-thres": (args.conf_thres, 0 <= args.conf_thres <= 1, "0..1"),
        "--iou-thres": (args.iou_thres, 0 <= args.iou_thres <= 1, "0..1"),
        "--max-det": (args.max_det, 1 <= args.max_det <= MAX_DET_LIMIT, f"1..{MAX_DET_LIMIT}"),
    }
    for name, (value, ok, expected) in checks.items():
        if not ok:
            raise InputError(f"{name} {value}: out of range (expected {expected})")
    if args.max_queue < args.max_images:
        raise InputError(f"--max-queue {args.max_queue} is below --max-images {args.max_images}: the queue counts "
                         f"images, and a request of {args.max_images} images could never be queued")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

    try:
        from ..serve.batcher import BatchSettings
        from ..serve.inputs import DetectParams
        from ..serve.run import ModelOptions, serve
        from ..serve.settings import MIB, ServeSettings
    except ModuleNotFoundError as e:
        raise InputError(f'serve needs the serve extra (missing {e.name}): pip install "yolor-deploy[serve]"') \
            from None
    from ..runtime.backends.throughput import default_streams
    from ..runtime.inputs.image_header import max_pixels
    from ..runtime.inputs.opencv import set_max_pixels

    _check_numbers(args)
    if args.max_pixels:
        set_max_pixels(args.max_pixels)  # OpenCV's own cap too: it is loaded after this, by the first upload
    _check_engine_flags(args)
    streams = (args.workers or default_streams()) if args.mode == "throughput" else 1
    batching = BatchSettings(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                             workers=args.workers or streams)
    settings = ServeSettings(max_body_bytes=max(int(args.max_body_mb * MIB), 1024),
                             max_pixels=args.max_pixels or max_pixels(), max_images=args.max_images,
                             timeout_s=args.timeout_s, max_pixels_in_flight=args.max_pixels_in_flight,
                             header_timeout_s=args.header_timeout_s, body_timeout_s=args.body_timeout_s,
                             max_header_bytes=int(args.max_header_kb * 1024),
                             defaults=DetectParams(args.conf_thres, args.iou_thres, args.max_det))
    options = ModelOptions(backend=args.backend, providers=args.providers, threads=args.threads, cfg=args.cfg,
                           imgsz=args.imgsz, hint=runtime_hint(args, args.model), mode=args.mode,
                           streams=streams)
    if args.engine == "ray":
        from ..distributed.cluster import import_ray

        import_ray()  # one line naming the extra when Ray is missing
        from ..distributed.ray_serve import serve_with_ray

        return serve_with_ray(args.model, args.host, args.port, args.replicas or 1, args.ray_address, batching,
                              settings, options)
    return serve(args.model, args.host, args.port, batching, settings, options, grpc_port=args.grpc_port)


def _check_engine_flags(args: argparse.Namespace) -> None:
    """Flags of one engine given with the other: one line."""
    from ..errors import InputError

    if args.engine == "ray" and args.mode != "latency":
        raise InputError("--mode throughput: only with --engine local (with --engine ray, scale with --replicas: "
                         "each replica runs on CPUs // replicas threads)")
    only = {"local": ("workers", "grpc_port"), "ray": ("replicas", "ray_address")}
    for engine, flags in only.items():
        for flag in flags:
            if args.engine != engine and getattr(args, flag) is not None:
                raise InputError(f"--{flag.replace('_', '-')}: only with --engine {engine}")
