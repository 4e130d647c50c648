"""The HTTP API (FastAPI) over an `Engine`: health and readiness, model info, detection, Prometheus metrics.

Every refusal is JSON `{"error": "<field or upload>: <problem>", "kind": "<metrics label>"}` with its status
(400 bad input, 413 too large, 503 not ready / queue full with Retry-After, 504 timeout, 500 inference failed);
none of them stops the server. `create_app(engine, settings)` is the seam another engine (Ray Serve) reuses.
"""
# no `from __future__ import annotations`: the route signatures use a per-app pattern (a closure variable),
# which FastAPI resolves only from evaluated annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .admission import PixelBudget, image_pixels
from .engine import Engine, answer_within
from .inputs import MAX_DET_LIMIT, PARAM_NAMES, RequestError, bad_request, decode_images, parse_params
from .metrics import ServeMetrics
from .middleware import BodyLimitMiddleware, BodyTimeoutMiddleware, ContentTypeMiddleware, MetricsMiddleware
from .oip_rest import oip_router
from .openapi_docs import DETECT_ERRORS, IMAGE_TYPES, MAX_DET, UNIT, classes_pattern, errors
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
        return refuse("bad_request", 400, _param_message(e) or _validation_message(e))

    def _param_message(e: RequestValidationError) -> str | None:
        """A detection parameter the schema's pattern refused: the parser's own words for it (the same line
        as `predict` and /v2 give), or, for a value only the pattern refuses, what the schema expects."""
        first: dict[str, Any] = next(iter(e.errors()), {})
        loc = [str(p) for p in first.get("loc", ())]
        name = loc[-1] if loc else ""
        if name not in PARAM_NAMES or not isinstance(first.get("input"), str):
            return None
        try:
            parse_params([(name, first["input"])], int(engine.info().get("nc") or 1 << 30), settings.defaults)
        except RequestError as refused:
            return refused.message
        pattern = first.get("ctx", {}).get("pattern")
        return f"{name}: {first['input']!r} is not in the documented form (pattern {pattern})"

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return refuse(HTTP_KINDS.get(e.status_code, "bad_request"), e.status_code, str(e.detail),
                      dict(e.headers or {}))

    @app.get("/health", summary="alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="model loaded and warmed up (503 while warming up or shutting down)",
             responses=errors(503))
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

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    AS_FORM = "or as a form field (replaces the query's)"  # noqa: N806
    nc = engine.info().get("nc")  # known here for a local engine; a Ray engine learns it from its replicas later
    classes_re = classes_pattern(int(nc)) if nc else r"^[0-9]+(,[0-9]+)*$"

    @app.post("/v1/detect", summary="detect objects in one or more images", responses=errors(*DETECT_ERRORS))
    async def detect(
        request: Request,
        image: Annotated[list[UploadFile], File(description="an image file; repeat the field for several",
                                                min_length=1)],
        conf: Annotated[str | None, Query(description="score threshold 0..1 (default: the server's)",
                                          pattern=UNIT)] = None,
        iou: Annotated[str | None, Query(description="NMS IoU threshold 0..1 (default: the server's)",
                                         pattern=UNIT)] = None,
        max_det: Annotated[str | None, Query(description=f"detections per image, 1..{MAX_DET_LIMIT}",
                                             pattern=MAX_DET)] = None,
        classes: Annotated[str | None, Query(description="keep only these class indices, e.g. 0,2",
                                             pattern=classes_re)] = None,
        conf_form: Annotated[str | None, Form(alias="conf", description=AS_FORM,
                                              pattern=UNIT)] = None,
        iou_form: Annotated[str | None, Form(alias="iou", description=AS_FORM,
                                             pattern=UNIT)] = None,
        max_det_form: Annotated[str | None, Form(alias="max_det", description=AS_FORM,
                                                 pattern=MAX_DET)] = None,
        classes_form: Annotated[str | None, Form(alias="classes", description=AS_FORM,
                                                 pattern=classes_re)] = None,
    ) -> JSONResponse:
        metrics.in_flight.inc()
        try:
            return await _detect(request, image)
        finally:
            metrics.in_flight.dec()

    async def _param_items(request: Request) -> list[tuple[str, str]]:
        """The detection parameters from the query and the form's text fields; a name given as a form field
        replaces the same name in the query (documented in the schema); a form field that is neither `image`
        nor a parameter is refused (never silently ignored)."""
        form = [(k, v) for k, v in (await request.form()).multi_items() if k != "image"]  # parsed already
        for name, value in form:
            if name not in PARAM_NAMES:
                raise bad_request(f"{name}: unknown form field (images go in 'image'; parameters: "
                                  f"{', '.join(PARAM_NAMES)}, in the query or as form fields)")
            if not isinstance(value, str):
                raise bad_request(f"{name}: a file where a value was expected")
        in_form = {k for k, _ in form}
        return [(k, v) for k, v in request.query_params.multi_items() if k not in in_form] + \
            [(k, str(v)) for k, v in form]

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
        out = await answer_within(engine.detect(images, params), max(remaining, 1e-3),
                                  f"no answer within {settings.timeout_s:g} s (the server's --timeout-s)")
        metrics.images.inc(len(images))
        total_ms = 1000 * (time.perf_counter() - t0)
        times = {"decode": decode_ms, **out.time_ms, "total": total_ms}
        per_image = [detections_json(d, b, times) for d, b in zip(out.detections, out.batch_sizes)]
        return JSONResponse(per_image[0] if len(per_image) == 1 else {"results": per_image})

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, plus what its annotations cannot say: an upload is a non-empty image file."""
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            body = doc.get("components", {}).get("schemas", {}).get("Body_detect_v1_detect_post", {})
            body.get("properties", {}).get("image", {}).get("items", {})["minLength"] = 1
            form = doc["paths"]["/v1/detect"]["post"]["requestBody"]["content"]["multipart/form-data"]
            form["encoding"] = {"image": {"contentType": IMAGE_TYPES, "headers": {"Content-Disposition": {
                "description": "a file part: it needs a filename (a part without one is a text field)",
                "schema": {"type": "string", "example": 'form-data; name="image"; filename="photo.jpg"'}}}}}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(oip_router(engine, settings, metrics, lambda: bool(state["draining"]), budget))
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.body_timeout_s)  # type: ignore[arg-type]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,  # type: ignore[arg-type]
                       on_reject=lambda: metrics.count_error("body_too_large"))
    app.add_middleware(ContentTypeMiddleware, routes={"/v1/detect": "multipart/form-data"},  # type: ignore[arg-type]
                       on_reject=lambda: metrics.count_error("unsupported_media_type"))
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # type: ignore[arg-type]  # outermost: sees every answer
    return app
