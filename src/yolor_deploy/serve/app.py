"""The HTTP API (FastAPI) over an `Engine`: health and readiness, model info, detection, Prometheus metrics.

Every refusal is JSON `{"error": "<field or upload>: <problem>", "kind": "<metrics label>"}` with its status
(400 bad input, 413 too large, 503 not ready / queue full with Retry-After, 504 timeout, 500 inference failed);
none of them stops the server. `create_app(engine, settings)` is the seam another engine (Ray Serve) reuses.
"""
from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import first_line
from .admission import PixelBudget, image_pixels
from .batcher import QueueFullError
from .engine import Engine
from .inputs import MAX_DET_LIMIT, PARAM_NAMES, RequestError, bad_request, decode_images, parse_params
from .metrics import ServeMetrics
from .middleware import BodyLimitMiddleware, BodyTimeoutMiddleware, ContentTypeMiddleware, MetricsMiddleware
from .oip_rest import oip_router
from .outputs import detections_json
from .settings import ServeSettings

HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 408: "body_timeout", 413: "body_too_large"}
# The package is imported before any of its modules; reading its __version__ from sys.modules keeps the
# import graph honest (an `import yolor_deploy` would name the export side behind the package's lazy __getattr__).
__version__: str = sys.modules[__name__.split(".")[0]].__version__
DESCRIPTION = """Object detection with a YOLOR model exported by yolor-deploy (the same results as `yolor-deploy
predict`). POST images to `/v1/detect` as multipart/form-data field `image` (repeat it for several)."""


def _validation_message(e: RequestValidationError) -> str:
    """FastAPI's validation errors -> one line naming the field."""
    first: dict[str, Any] = next(iter(e.errors()), {})
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query")]
    field = ".".join(loc) or "request"
    hint = " (send images as multipart/form-data field 'image')" if field.startswith("image") else ""
    return f"{field}: {first.get('msg', 'invalid')}{hint}"


def create_app(engine: Engine, settings: ServeSettings | None = None,
               metrics: ServeMetrics | None = None) -> FastAPI:
    """The service over `engine`. The engine is started and stopped (drained) with the app's lifespan;
    `app.state.begin_drain()` (call it in the event loop) marks the app as shutting down: /ready answers 503."""
    settings = settings or ServeSettings()
    metrics = metrics or ServeMetrics()
    metrics.watch_queue(engine.queue_depth)
    state = {"draining": False}
    budget = PixelBudget(settings.pixel_budget)
    metrics.watch_pixels(lambda: budget.in_use)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.loop = asyncio.get_running_loop()
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(title="yolor-deploy", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.engine, app.state.settings, app.state.metrics = engine, settings, metrics
    app.state.pixel_budget = budget

    def begin_drain() -> None:
        state["draining"] = True
        engine.drain()

    app.state.begin_drain = begin_drain

    def refuse(kind: str, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        metrics.count_error(kind)
        return JSONResponse({"error": message, "kind": kind}, status_code=status, headers=headers)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, e: RequestError) -> JSONResponse:
        return refuse(e.kind, e.status, e.message, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        return refuse("bad_request", 400, _validation_message(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return refuse(HTTP_KINDS.get(e.status_code, "bad_request"), e.status_code, str(e.detail),
                      dict(e.headers or {}))

    @app.get("/health", summary="alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="model loaded and warmed up (503 while warming up or shutting down)")
    async def ready() -> JSONResponse:
        if state["draining"]:
            return JSONResponse({"ready": False, "reason": "shutting down"}, status_code=503)
        if engine.ready():
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "reason": engine.not_ready_reason()}, status_code=503,
                            headers={"Retry-After": "1"})

    @app.get("/v1/model", summary="classes, input size, precision, NMS settings, source hash, version")
    async def model_info() -> dict[str, Any]:
        return {**engine.info(), "server_version": __version__, "defaults": asdict(settings.defaults),
                "limits": {"max_body_bytes": settings.max_body_bytes, "max_pixels": settings.max_pixels,
                           "max_images": settings.max_images, "timeout_s": settings.timeout_s,
                           "max_pixels_in_flight": settings.pixel_budget, "max_header_bytes": settings.max_header_bytes,
                           "header_timeout_s": settings.header_timeout_s, "body_timeout_s": settings.body_timeout_s}}

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    @app.post("/v1/detect", summary="detect objects in one or more images")
    async def detect(
        request: Request,
        image: Annotated[list[UploadFile], File(description="an image file; repeat the field for several")],
        conf: Annotated[str | None, Query(description="score threshold 0..1 (default: the server's)")] = None,
        iou: Annotated[str | None, Query(description="NMS IoU threshold 0..1 (default: the server's)")] = None,
        max_det: Annotated[str | None, Query(description=f"detections per image, 1..{MAX_DET_LIMIT}")] = None,
        classes: Annotated[str | None, Query(description="keep only these class indices, e.g. 0,2")] = None,
        conf_form: Annotated[str | None, Form(alias="conf", description="or as a form field (not both)")] = None,
        iou_form: Annotated[str | None, Form(alias="iou", description="or as a form field (not both)")] = None,
        max_det_form: Annotated[str | None, Form(alias="max_det", description="or as a form field")] = None,
        classes_form: Annotated[str | None, Form(alias="classes", description="or as a form field")] = None,
    ) -> JSONResponse:
        metrics.in_flight.inc()
        try:
            return await _detect(request, image)
        finally:
            metrics.in_flight.dec()

    async def _param_items(request: Request) -> list[tuple[str, str]]:
        """The detection parameters from the query and the form's text fields: each name in one place only;
        a form field that is neither `image` nor a parameter is refused (never silently ignored)."""
        query = request.query_params.multi_items()
        form = [(k, v) for k, v in (await request.form()).multi_items() if k != "image"]  # parsed already
        for name, value in form:
            if name not in PARAM_NAMES:
                raise bad_request(f"{name}: unknown form field (images go in 'image'; parameters: "
                                  f"{', '.join(PARAM_NAMES)}, in the query or as form fields)")
            if not isinstance(value, str):
                raise bad_request(f"{name}: a file where a value was expected")
        both = sorted({k for k, _ in form} & {k for k, _ in query})
        if both:
            raise bad_request(f"{both[0]}: given both in the query and as a form field (give it once)")
        return query + [(k, str(v)) for k, v in form]

    async def _detect(request: Request, uploads: list[UploadFile]) -> JSONResponse:
        t0 = time.perf_counter()
        if not engine.ready():
            raise RequestError(503, "not_ready", f"not ready: {engine.not_ready_reason()}", {"Retry-After": "1"})
        params = parse_params(await _param_items(request), int(engine.info()["nc"]), settings.defaults)
        if len(uploads) > settings.max_images:
            raise RequestError(413, "too_many_images", f"image: {len(uploads)} images in one request (at most "
                                                       f"{settings.max_images}: the server's --max-images)")
        blobs = [await f.read() for f in uploads]
        with budget.hold(sum(image_pixels(blobs, settings.max_pixels)), "image"):
            return await _detect_admitted(blobs, params, t0)

    async def _detect_admitted(blobs: list[bytes], params, t0: float) -> JSONResponse:
        images = await run_in_threadpool(decode_images, blobs, settings.max_pixels)
        decode_ms = 1000 * (time.perf_counter() - t0)
        remaining = settings.timeout_s - (time.perf_counter() - t0)
        try:
            out = await asyncio.wait_for(engine.detect(images, params), max(remaining, 1e-3))
        except asyncio.TimeoutError:
            raise RequestError(504, "timeout", f"no answer within {settings.timeout_s:g} s (the server's "
                                               f"--timeout-s)") from None
        except QueueFullError as e:
            raise RequestError(503, "queue_full", str(e), {"Retry-After": str(e.retry_after_s)}) from None
        except RequestError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed model call answers 500; the server goes on
            raise RequestError(500, "internal", f"inference failed: {first_line(e)}") from None
        metrics.images.inc(len(images))
        total_ms = 1000 * (time.perf_counter() - t0)
        times = {"decode": decode_ms, **out.time_ms, "total": total_ms}
        per_image = [detections_json(d, b, times) for d, b in zip(out.detections, out.batch_sizes)]
        return JSONResponse(per_image[0] if len(per_image) == 1 else {"results": per_image})

    app.include_router(oip_router(engine, settings, metrics, lambda: bool(state["draining"]), budget))
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.body_timeout_s)  # type: ignore[arg-type]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,  # type: ignore[arg-type]
                       on_reject=lambda: metrics.count_error("body_too_large"))
    app.add_middleware(ContentTypeMiddleware, routes={"/v1/detect": "multipart/form-data"},  # type: ignore[arg-type]
                       on_reject=lambda: metrics.count_error("unsupported_media_type"))
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # type: ignore[arg-type]  # outermost: sees every answer
    return app
