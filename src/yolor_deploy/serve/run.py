"""`serve(model, ...)`: load the model, bind the socket, run the app in uvicorn until SIGTERM/SIGINT.

The model is opened and run once (a warm-up inference on a blank image) before the socket is bound, so a bad
model file, or one that loads but cannot run, is one error line and exit 2, not a server that never becomes
ready. On SIGTERM or SIGINT uvicorn stops accepting connections and waits for the requests in
flight (the batcher stops waiting for batches to fill); then the engine drains and `serve` returns 0.
"""
from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from ..contract import RuntimeHint
from ..errors import InputError, first_line
from .batcher import BatchSettings
from .settings import ServeSettings


def log_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ModelOptions:
    """How to open the model: as `predict` does (backend, providers, threads, main-branch cfg, imgsz)."""

    backend: str = "auto"
    providers: str | None = None
    threads: int | None = None
    cfg: str | None = None
    imgsz: Sequence[int] | None = None
    hint: RuntimeHint | None = None  # --hint REPORT, read by the CLI
    mode: str = "latency"  # throughput: `streams` model calls at once, the cores shared among them
    streams: int = 1


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one); InputError naming the address otherwise."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:  # gaierror included
        raise InputError(f"--host {host} --port {port}: cannot listen ({e.strerror or e})") from None
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def open_detector(model: str | Path, max_batch: int, options: ModelOptions, defaults):
    """The Detector a server runs: `options` as predict opens a model, `defaults` (DetectParams) its NMS
    settings, `max_batch` images per model call at most (a fixed-batch model decides its own)."""
    from ..runtime import Detector

    with warnings.catch_warnings():  # the batching line below says it once, in our words
        warnings.filterwarnings("ignore", message=".*takes batches of exactly.*")
        return Detector(model, providers=options.providers, conf_thres=defaults.conf_thres,
                        iou_thres=defaults.iou_thres, max_det=defaults.max_det, classes=defaults.classes,
                        imgsz=options.imgsz, batch_size=max_batch, threads=options.threads, cfg=options.cfg,
                        backend=options.backend, hint=options.hint, mode=options.mode,
                        streams=options.streams if options.mode == "throughput" else None)


def warm_up_or_refuse(detector, model: str | Path) -> float:
    """One inference on a blank image of the model's size (seconds taken); InputError naming the model when it
    cannot run (a graph that loads but fails at run time, a provider that cannot execute it)."""
    from .engine import warm_up

    try:
        return warm_up(detector)
    except Exception as e:  # noqa: BLE001 - whatever the engine raises, the user gets one line and exit 2
        h, w = detector.imgsz
        raise InputError(f"{model}: the model loads but cannot run (warm-up inference on a blank {h}x{w} image "
                         f"failed: {first_line(e)})") from None


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000, batching: BatchSettings | None = None,
          settings: ServeSettings | None = None, options: ModelOptions | None = None,
          log: Callable[[str], None] = log_stderr, grpc_port: int | None = None) -> int:
    """Serve `model` over HTTP (and the Open Inference Protocol's gRPC on `grpc_port`, 0: a free port) until
    SIGTERM/SIGINT; 0 after a graceful stop."""
    from .app import create_app
    from .engine import LocalEngine, batching_note, precision
    from .metrics import ServeMetrics

    batching, settings, options = batching or BatchSettings(), settings or ServeSettings(), options or ModelOptions()
    detector = open_detector(model, batching.max_batch, options, settings.defaults)
    warm_s = warm_up_or_refuse(detector, model)
    _, note = batching_note(detector, batching.max_batch)
    metrics = ServeMetrics()
    engine = LocalEngine(detector, batching, Path(model).name, on_model_call=metrics.batch_size.observe, log=log,
                         warmed_s=warm_s)
    app = create_app(engine, settings, metrics)
    if grpc_port is not None:
        from .oip_grpc import attach_grpc

        attach_grpc(app, engine, settings, metrics, host, grpc_port, log)
    sock = bind_socket(host, port)
    if not is_loopback(host):
        log(f"warning: listening on {host}: anyone who can reach this address can use the model (no auth)")
    h, w = detector.imgsz
    wait = f", waits up to {batching.max_wait_ms:g} ms" if detector.batch_size > 1 else ""
    log(f"serving {Path(model).name} ({detector.backend.name}, {len(detector.names)} classes, {h}x{w}"
        f"{' dynamic' if detector.auto else ''}, {precision(detector)}) at {_url(sock)}  (docs: /docs); "
        f"{note}{wait}; {batching.workers} worker(s), {detector.mode} mode, queue {batching.max_queue}")
    from .protocol import guarded_protocol

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(settings.timeout_s) + 5,
                            http=guarded_protocol(settings.header_timeout_s, settings.max_header_bytes),
                            h11_max_incomplete_event_size=settings.max_header_bytes)
    server = _GracefulServer(config, app, log)
    restore = _quiet_signal_reraise()
    try:
        server.run(sockets=[sock])
    finally:
        restore()
        sock.close()
    if not server.started:
        raise InputError(f"{model}: the server did not start (see the lines above)")
    log("stopped")
    return 0


class _GracefulServer(uvicorn.Server):
    """uvicorn.Server that also tells the app it is draining (/ready 503, batches go out without waiting)."""

    def __init__(self, config: uvicorn.Config, app, log: Callable[[str], None]):
        super().__init__(config)
        self._app, self._log = app, log

    def handle_exit(self, sig: int, frame) -> None:
        if not self.should_exit:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            self._log(f"{name}: stopping; finishing the requests in flight")
            loop = getattr(self._app.state, "loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(self._app.state.begin_drain)
        super().handle_exit(sig, frame)


def _quiet_signal_reraise() -> Callable[[], None]:
    """uvicorn re-raises the signal it caught once it has shut down gracefully (so the default action, death by
    the signal, follows). With a no-op Python handler in place beforehand, that re-raise does nothing and the
    process exits 0 after a graceful stop. Returns a function that restores the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    sigs = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.signal(s, lambda *_: None) for s in sigs}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore
