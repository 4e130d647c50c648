"""`serve --engine ray`: the plain server's HTTP app as a Ray Serve application, its model on N replicas.

Two deployments. `http` (one replica) is the plain server's FastAPI app itself, `serve.app.create_app`, built in
its replica (`__serve_build_asgi_app__`) over a `RayEngine`: the same routes, validation, limits (body cap,
pixel cap, image count), errors, JSON and /metrics, with no second definition of any of them. `RayEngine`
implements `serve.engine.Engine` by sending each decoded image to `detector`: N `DetectorReplica`s (one Detector
each) whose `@serve.batch` gathers images of concurrent requests into one model call (up to --max-batch images,
waiting at most --max-wait-ms) and runs `serve.engine.run_jobs`, the local engine's batch step: the same
preprocess, model call and per-request NMS, so the answers equal the plain server's and `predict`'s.
Ray Serve's proxy listens on --host/--port; Ray's `BackPressureError` (more than --max-queue images waiting)
is the plain server's 503 with Retry-After.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.exceptions import BackPressureError

from ..errors import InputError, first_line
from ..serve.app import create_app
from ..serve.batcher import BatchSettings, QueueFullError
from ..serve.engine import DetectJob, DetectOutput, batching_note, describe_model, precision, run_jobs, warm_up
from ..serve.inputs import DetectParams
from ..serve.metrics import ServeMetrics
from ..serve.run import ModelOptions, bind_socket, is_loopback, log_stderr, open_detector, warm_up_or_refuse
from ..serve.settings import ServeSettings
from .cluster import ray_session, size_pool

APP_NAME = "yolor-deploy"
INGRESS_MAX_ONGOING = 1024  # requests the HTTP replica holds at once: async, cheap; the queue limit is --max-queue
STAGES = ("queue", "pre", "infer", "post")


@dataclass(frozen=True)
class ReplicaConfig:
    """What each `DetectorReplica` opens: the model (an absolute path every node can read), how (`options`, with
    the threads per replica), its default NMS settings, and the batching of `@serve.batch`."""

    model: str
    options: ModelOptions
    defaults: DetectParams
    max_batch: int
    max_wait_ms: float


class DetectorReplica:
    """One Detector, loaded and warmed up before the replica reports healthy. `detect(image, params)` queues one
    image for `@serve.batch`, which hands up to `max_batch` queued images to one `run_jobs` call (in a thread,
    so the next batch gathers meanwhile)."""

    def __init__(self, config: ReplicaConfig):
        self.detector = open_detector(config.model, config.max_batch, config.options, config.defaults)
        self.max_batch, self.note = batching_note(self.detector, config.max_batch)
        self.model_name = Path(config.model).name
        batched: Any = self._batched_detect  # @serve.batch's wrapper: its limits are set per replica
        batched.set_max_batch_size(self.max_batch)
        batched.set_batch_wait_timeout_s(config.max_wait_ms / 1000)
        warm_up(self.detector)

    def info(self) -> dict[str, Any]:
        """The model part of /v1/model, the batch limit and why, the replica's process id."""
        return {**describe_model(self.detector, self.model_name), "max_batch": self.max_batch, "note": self.note,
                "pid": os.getpid()}

    async def detect(self, image: Any, params: DetectParams) -> DetectOutput:
        return await self._batched_detect(DetectJob([image], params))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)  # set from the config in __init__
    async def _batched_detect(self, jobs: list[DetectJob]) -> list[DetectOutput]:
        return await asyncio.to_thread(run_jobs, self.detector, jobs)


class RayEngine:
    """`serve.engine.Engine` over a deployment handle of `DetectorReplica`s. A request's images go out as one
    call each (they may run in different batches, on different replicas); the answer keeps their order, and
    its stage times are the slowest image's.

    Admission counts images, as the plain server's batcher does: the replicas run `running` images at once
    (`replicas` x their `max_ongoing_requests`); a request whose images would leave more than `--max-queue`
    waiting beyond those is refused (503 + Retry-After) before anything is sent. Ray Serve's own
    `max_queued_requests` stays as a backstop: its count is per router and approximate (a test saw it admit a
    request over the limit under load)."""

    def __init__(self, handle: Any, batching: BatchSettings, replicas: int, running: int | None = None):
        self.handle, self.batching, self.replicas = handle, batching, replicas
        self.running = running if running is not None else replicas * 2 * batching.max_batch
        self._info: dict[str, Any] = {}
        self._failure = ""
        self._in_flight = 0
        self._probe: asyncio.Task | None = None

    async def start(self) -> None:
        self._probe = asyncio.create_task(self._fetch_info())

    async def _fetch_info(self) -> None:
        try:
            self._info = await self.handle.info.remote()
        except Exception as e:  # noqa: BLE001 - shown by /ready
            self._failure = f"the detector replicas did not answer: {first_line(e)}"

    async def stop(self) -> None:
        """Wait (at most the ingress's graceful-shutdown time, Ray's limit) for the images in flight."""
        while self._in_flight:
            await asyncio.sleep(0.01)

    def drain(self) -> None:
        """Nothing to flush: `@serve.batch` waits at most --max-wait-ms for a batch to fill."""

    def ready(self) -> bool:
        return bool(self._info)

    def not_ready_reason(self) -> str:
        return self._failure or ("" if self._info else "waiting for the detector replicas")

    def queue_depth(self) -> int:
        """Images sent to the replicas and not answered yet."""
        return self._in_flight

    def info(self) -> dict[str, Any]:
        model = {k: v for k, v in self._info.items() if k not in ("max_batch", "note", "pid")}
        return {**model, "batching": {"engine": "ray", "replicas": self.replicas,
                                      "max_batch": self._info.get("max_batch"),
                                      "max_wait_ms": self.batching.max_wait_ms, "max_queue": self.batching.max_queue,
                                      "note": self._info.get("note", "")}}

    async def detect(self, images: list[Any], params: DetectParams) -> DetectOutput:
        if self._in_flight + len(images) - self.running > self.batching.max_queue:
            raise QueueFullError(self.batching.max_queue, self.batching.retry_after_s)
        self._in_flight += len(images)
        calls = [asyncio.ensure_future(self._one(im, params)) for im in images]
        try:
            outs = await asyncio.gather(*calls)
        except BaseException:
            for c in calls:
                c.cancel()
            raise
        finally:
            self._in_flight -= len(images)
        return DetectOutput([o.detections[0] for o in outs], [o.batch_sizes[0] for o in outs],
                            {k: max(o.time_ms.get(k, 0.0) for o in outs) for k in STAGES})

    async def _one(self, image: Any, params: DetectParams) -> DetectOutput:
        try:
            return await self.handle.detect.remote(image, params)
        except BackPressureError:
            raise QueueFullError(self.batching.max_queue, self.batching.retry_after_s) from None


@serve.ingress()
class HttpIngress:
    """The plain server's app (`create_app`) over a `RayEngine`, built in the replica (the app holds locks and a
    Prometheus registry: it is made where it runs, never pickled)."""

    def __init__(self, detector: Any, batching: BatchSettings, settings: ServeSettings, replicas: int,
                 running: int):
        self._engine = RayEngine(detector, batching, replicas, running)
        self._settings = settings

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self._engine, self._settings, ServeMetrics())


def build_application(config: ReplicaConfig, replicas: int, cpus_per_replica: float, batching: BatchSettings,
                      settings: ServeSettings) -> Any:
    """The Ray Serve application: `http` (1 replica, no CPU reserved) -> `detector` (`replicas`, each
    reserving `cpus_per_replica`; up to two batches' worth of images each; --max-queue images waiting)."""
    ongoing = 2 * config.max_batch
    detector = serve.deployment(
        name="detector", num_replicas=replicas, ray_actor_options={"num_cpus": cpus_per_replica},
        max_ongoing_requests=ongoing, max_queued_requests=batching.max_queue,
        graceful_shutdown_timeout_s=settings.timeout_s + 5)(DetectorReplica)
    ingress = serve.deployment(
        name="http", num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=INGRESS_MAX_ONGOING,
        graceful_shutdown_timeout_s=settings.timeout_s + 5)(HttpIngress)
    return ingress.bind(detector.bind(config), batching, settings, replicas, replicas * ongoing)


def free_port(host: str) -> int:
    """A port free on `host` now (for --port 0: Ray Serve's proxy needs a number)."""
    sock = bind_socket(host, 0)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def serve_with_ray(model: str | Path, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
                   ray_address: str | None = None, batching: BatchSettings | None = None,
                   settings: ServeSettings | None = None, options: ModelOptions | None = None,
                   log: Callable[[str], None] = log_stderr) -> int:
    """Serve `model` as a Ray Serve application until SIGTERM/SIGINT; 0 after a graceful stop.

    Without `ray_address` (or $RAY_ADDRESS) a local Ray sized to this machine is started and, with Serve,
    stopped at the end; on an existing cluster only this application is deleted at the end."""
    batching, settings, options = batching or BatchSettings(), settings or ServeSettings(), options or ModelOptions()
    if replicas < 1:
        raise InputError(f"--replicas {replicas}: must be at least 1")
    model = Path(model).absolute()
    probe = open_detector(model, batching.max_batch, replace(options, threads=1), settings.defaults)
    warm_up_or_refuse(probe, model)  # a model that loads but cannot run: one line, before Ray starts
    max_batch, note = batching_note(probe, batching.max_batch)
    h, w = probe.imgsz
    what = (f"{model.name} ({probe.backend.name}, {len(probe.names)} classes, {h}x{w}"
            f"{' dynamic' if probe.auto else ''}, {precision(probe)})")
    del probe
    port = free_port(host) if port == 0 else _check_port(host, port)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # our start line says where it listens, once
    stop_within = settings.timeout_s + 15  # the requests in flight finish (timeout_s at most), then a margin
    with ray_session(ray_address):
        size = size_pool(replicas, options.threads)
        config = ReplicaConfig(str(model), replace(options, threads=size.threads), settings.defaults, max_batch,
                               batching.max_wait_ms)
        stop = _StopOnSignal(log)
        try:
            serve.start(http_options={"host": host, "port": port})
            serve.run(build_application(config, replicas, size.cpus_per_worker, batching, settings),
                      name=APP_NAME, route_prefix="/", logging_config={"log_level": "WARNING",
                                                                       "enable_access_log": False})
        except Exception as e:  # noqa: BLE001 - a replica that fails to start: one line, exit 2
            _stop_serve(stop_within, log)
            stop.restore()
            raise InputError(f"{model.name}: the Ray Serve application did not start ({first_line(e)})") from None
        if not is_loopback(host):
            log(f"warning: listening on {host}: anyone who can reach this address can use the model (no auth)")
        wait = f", waits up to {batching.max_wait_ms:g} ms" if max_batch > 1 else ""
        log(f"serving {what} at http://{f'[{host}]' if ':' in host else host}:{port}  (docs: /docs); Ray Serve: "
            f"{replicas} replica(s), {size.threads} thread(s) each; {note} (@serve.batch){wait}; "
            f"queue {batching.max_queue} images")
        try:
            stop.wait()
        finally:
            _stop_serve(stop_within, log)
            stop.restore()
    log("stopped")
    return 0


def _check_port(host: str, port: int) -> int:
    """`port` if it can be listened on now (InputError naming it otherwise, before Ray starts)."""
    bind_socket(host, port).close()
    return port


def _stop_serve(within_s: float, log: Callable[[str], None]) -> None:
    """Delete the application (Ray Serve lets the requests in flight finish), waiting `within_s` at most: a
    cluster already gone (its processes killed with ours) must not hang the exit. Serve itself (controller,
    proxy) goes with a local Ray when `ray_session` stops it; on a shared cluster it stays for other apps."""
    def stop() -> None:
        try:
            serve.delete(APP_NAME)
        except Exception as e:  # noqa: BLE001 - Ray stops next anyway
            log(f"warning: stopping Ray Serve: {first_line(e)}")

    worker = threading.Thread(target=stop, name="yolor-serve-stop", daemon=True)
    worker.start()
    worker.join(within_s)
    if worker.is_alive():
        log(f"warning: Ray Serve did not stop within {within_s:g} s; stopping Ray")


class _StopOnSignal:
    """SIGTERM/SIGINT set an event (replacing the handler `ray.init` installs, which exits 15 at once)."""

    def __init__(self, log: Callable[[str], None]):
        self._event, self._log = threading.Event(), log
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, sig: int, frame: Any) -> None:
        if not self._event.is_set():
            self._log(f"{signal.Signals(sig).name}: stopping; finishing the requests in flight")
        self._event.set()

    def wait(self) -> None:
        while not self._event.wait(0.5):
            pass

    def restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
