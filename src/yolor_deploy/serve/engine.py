"""The seam between the HTTP app and whatever runs the model.

`create_app` talks only to an `Engine`; `LocalEngine` runs a `Detector` in this process behind the
`DynamicBatcher`; a Ray Serve deployment can implement the same protocol. Results are exactly `predict`'s: one
model call per gathered batch (the Detector's own letterbox and grouping by input shape), then each request's
NMS with its own thresholds on its own rows of the raw output (`Detector.postprocess` on a copy of the
Detector that holds the request's settings), so requests with different `conf`/`iou`/`classes` share a batch
without changing each other's results.
"""
from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import first_line
from ..runtime.detector import Batch, Detector
from ..runtime.results.detections import Detections
from .batcher import BatchSettings, DynamicBatcher, QueueFullError
from .inputs import DetectParams, RequestError
from .oip_raw import RawJob, run_raw


@dataclass
class DetectOutput:
    """One request's results: a `Detections` per image (in order), the number of images in the model call each
    image ran in, and milliseconds per stage (queue, pre, infer, post)."""

    detections: list[Detections]
    batch_sizes: list[int]
    time_ms: dict[str, float] = field(default_factory=dict)


class Engine(Protocol):
    """What the HTTP app needs. `detect` may raise `batcher.QueueFullError` (503) or `inputs.RequestError`."""

    async def start(self) -> None:
        """Begin serving (load/warm up in the background; `ready()` says when done)."""

    async def stop(self) -> None:
        """Finish every accepted request, then release the model."""

    def drain(self) -> None:
        """Shutting down: stop waiting for batches to fill (called from the signal handler's loop callback)."""

    def ready(self) -> bool:
        """The model is loaded and warmed up."""

    def not_ready_reason(self) -> str:
        """Why `ready()` is False (warming up, failed: ...)."""

    def queue_depth(self) -> int:
        """Requests waiting for a batch."""

    def info(self) -> dict[str, Any]:
        """What `/v1/model` shows: classes, input size, precision, NMS settings, source hash, version, batching."""

    async def detect(self, images: list[np.ndarray], params: DetectParams) -> DetectOutput:
        """BGR uint8 images -> their detections, with `params`' thresholds."""


@dataclass
class DetectJob:
    """One request's images and settings, and when it was queued (its `queue` time in the answer)."""

    images: list[np.ndarray]
    params: DetectParams
    enqueued: float = field(default_factory=time.perf_counter)


def batching_note(detector: Detector, requested: int) -> tuple[int, str]:
    """(images per model call, why): a fixed-batch model decides; a dynamic one takes `requested`."""
    fixed = detector.backend.input_shape[0]
    if fixed == 1:
        return 1, "batching off: the model takes a fixed batch of 1 (export with --dynamic to batch requests)"
    if fixed:
        return fixed, f"batching up to {fixed} images: the model takes a fixed batch of {fixed}"
    if requested <= 1:
        return 1, "batching off (--max-batch 1)"
    return requested, f"batching up to {requested} images per model call"


def precision(detector: Detector) -> str:
    m = detector.metadata
    return "int8" if m.quantized else "fp16" if m.half else "fp32"


async def answer_within(call: Any, timeout_s: float, timeout_message: str) -> Any:
    """Await an engine call (`/v1` and `/v2` alike): past `timeout_s` 504 (`timeout_message`), a full queue 503
    with Retry-After, a RequestError as it is, anything else a 500 naming the failure; the server goes on."""
    try:
        return await asyncio.wait_for(call, timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(504, "timeout", timeout_message) from None
    except QueueFullError as e:
        raise RequestError(503, "queue_full", str(e), {"Retry-After": str(e.retry_after_s)}) from None
    except RequestError:
        raise
    except Exception as e:  # noqa: BLE001 - a failed model call answers 500; the server goes on
        raise RequestError(500, "internal", f"inference failed: {first_line(e)}") from None


def warm_up(detector: Detector) -> float:
    """One model call on a blank image (first-call allocations happen here, not in a request); seconds taken."""
    t0 = time.perf_counter()
    h, w = detector.imgsz
    detector(np.full((h, w, 3), detector.metadata.pad_value, np.uint8))
    return time.perf_counter() - t0


def describe_model(detector: Detector, model_name: str) -> dict[str, Any]:
    """The model part of `/v1/model`: classes, input size, precision, NMS, source hash, version."""
    d, m = detector, detector.metadata
    return {
        "model": model_name, "backend": d.backend.name, "names": list(d.names), "nc": len(d.names),
        "input_size": list(d.imgsz), "dynamic_input": d.auto, "stride": list(m.stride),
        "precision": precision(d), "quantized": m.quantized or None, "nms": asdict(m.nms),
        "source_sha256": m.source_sha256 or None, "model_version": m.version or None,
    }


class LocalEngine:
    """A Detector in this process, behind a DynamicBatcher. The Detector's `batch_size` is the batch limit."""

    def __init__(self, detector: Detector, batching: BatchSettings, model_name: str = "",
                 on_model_call: Callable[[int], None] | None = None, log: Callable[[str], None] | None = None,
                 warmed_s: float | None = None):
        """`warmed_s`: the seconds a warm-up already run (by `serve`, before binding) took; None: warm up here."""
        self.detector, self.model_name = detector, model_name or Path(detector.backend.path).name
        self._warmed_s = warmed_s
        self.batching = batching
        self._on_model_call, self._log = on_model_call, log or (lambda line: None)
        self._batcher = DynamicBatcher(self._run_jobs, batching)
        self._ready, self._failure = False, ""
        self._warm_task: Any = None

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        import asyncio

        await self._batcher.start()
        self._warm_task = asyncio.create_task(asyncio.to_thread(self._warm_up))
        self._warm_task.add_done_callback(self._warmed)

    def _warm_up(self) -> float:
        return self._warmed_s if self._warmed_s is not None else warm_up(self.detector)

    def _warmed(self, task: Any) -> None:
        from ..errors import first_line

        if task.cancelled():
            self._failure = "warm-up cancelled"
        elif task.exception() is not None:
            self._failure = f"warm-up failed: {first_line(task.exception())}"
            self._log(f"error: {self.model_name}: {self._failure}")
        else:
            self._ready = True
            self._log(f"ready (warm-up {task.result():.2f} s)")

    async def stop(self) -> None:
        self._ready = False
        await self._batcher.stop()

    def drain(self) -> None:
        self._batcher.flush()

    def ready(self) -> bool:
        return self._ready

    def not_ready_reason(self) -> str:
        return self._failure or ("warming up" if not self._ready else "")

    def queue_depth(self) -> int:
        return self._batcher.depth

    def info(self) -> dict[str, Any]:
        d = self.detector
        return {
            **describe_model(d, self.model_name),
            "batching": {"max_batch": d.batch_size, "max_wait_ms": self.batching.max_wait_ms,
                         "max_queue": self.batching.max_queue, "workers": self.batching.workers,
                         "mode": d.mode, "note": batching_note(d, d.batch_size)[1]},
        }

    # --- requests -------------------------------------------------------------------------------
    async def detect(self, images: list[np.ndarray], params: DetectParams) -> DetectOutput:
        return await self._batcher.submit(DetectJob(list(images), params), len(images))

    async def infer_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        """A letterboxed FP32 [B, 3, H, W] tensor -> the model's raw outputs, through the same batcher."""
        return await self._batcher.submit(RawJob(tensor), len(tensor))

    def model_metadata(self) -> Any:
        """The model's `ModelMetadata` (what the Open Inference Protocol config carries)."""
        return self.detector.metadata

    def _run_jobs(self, jobs: Sequence[DetectJob | RawJob]) -> list[DetectOutput | list[np.ndarray]]:
        detect = [j for j in jobs if isinstance(j, DetectJob)]
        done = iter(run_jobs(self.detector, detect, self._on_model_call) if detect else [])
        return [next(done) if isinstance(j, DetectJob) else run_raw(self.detector, j.tensor, self._on_model_call)
                for j in jobs]


def _with_params(detector: Detector, params: DetectParams) -> Detector:
    view = copy.copy(detector)  # shares the backend; postprocess reads only these settings
    view.conf_thres, view.iou_thres, view.max_det = params.conf_thres, params.iou_thres, params.max_det
    view.classes = list(params.classes) if params.classes else None
    return view


def run_jobs(detector: Detector, jobs: Sequence[DetectJob],
             on_model_call: Callable[[int], None] | None = None) -> list[DetectOutput]:
    """Every image of `jobs` through one preprocess and as few model calls as the Detector's grouping by input
    shape allows; NMS per job with its own settings. The one batch step of every engine (the local batcher's
    worker thread, a Ray Serve replica's `@serve.batch`). `on_model_call(images)` after each model call."""
    t0 = time.perf_counter()
    images = [im for job in jobs for im in job.images]
    owner = [(k, i) for k, job in enumerate(jobs) for i in range(len(job.images))]
    outs = [DetectOutput([None] * len(j.images), [0] * len(j.images),  # type: ignore[list-item]
                         {"queue": 1000 * (t0 - j.enqueued), "pre": 0.0, "infer": 0.0, "post": 0.0})
            for j in jobs]
    views = [_with_params(detector, j.params) for j in jobs]
    batches = detector.preprocess(images)
    pre_ms = 1000 * (time.perf_counter() - t0)
    for batch in batches:
        t1 = time.perf_counter()
        raw = detector.infer(batch)
        infer_ms = 1000 * (time.perf_counter() - t1)
        if on_model_call is not None:
            on_model_call(len(batch.shapes))
        touched: set[int] = set()
        for row, idx in enumerate(batch.index):
            k, i = owner[idx]
            if k not in touched:  # a request's images may span model calls (different input shapes)
                outs[k].time_ms["infer"] += infer_ms
                touched.add(k)
            t2 = time.perf_counter()
            one = Batch(batch.tensor[row:row + 1], [batch.shapes[row]], [0])
            outs[k].detections[i] = views[k].postprocess([o[row:row + 1] for o in raw], one)[0]
            outs[k].batch_sizes[i] = len(batch.shapes)
            outs[k].time_ms["post"] += 1000 * (time.perf_counter() - t2)
    for out in outs:
        out.time_ms["pre"] = pre_ms
    return outs
