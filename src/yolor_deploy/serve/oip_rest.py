"""The Open Inference Protocol (KServe v2) over REST, beside `/v1` in the same app, on the same engine.

`GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/NAME[/versions/V]` (metadata),
`.../ready`, `.../config` (Triton's ModelConfig as JSON, our metadata in `parameters`), and
`POST .../infer` with JSON tensors or the binary tensor data extension. Refusals are `{"error": "..."}` with
their status (400 bad request, 404 unknown model, 413, 503 not ready / queue full, 504, 500) and are counted in
`/metrics` by kind; none stops the server.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .admission import PixelBudget
from .engine import Engine
from .inputs import RequestError
from .metrics import ServeMetrics
from .oip_model import OipModel
from .oip_tensors import HEADER, parse_rest_request, rest_response
from .openapi_docs import INFER_ERRORS, errors, no_body
from .settings import ServeSettings

EXTENSIONS = ["binary_tensor_data", "model_configuration"]


def server_metadata() -> dict[str, Any]:
    version = sys.modules[__name__.split(".")[0]].__version__
    return {"name": "yolor-deploy", "version": version, "extensions": EXTENSIONS}


def oip_router(engine: Engine, settings: ServeSettings, metrics: ServeMetrics,
               draining: Callable[[], bool], budget: PixelBudget | None = None) -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (v2)"])
    holder: dict[str, OipModel] = {}

    def model() -> OipModel:
        if "m" not in holder:
            holder["m"] = OipModel(engine, settings, metrics, budget)
        return holder["m"]

    def refuse(e: RequestError) -> JSONResponse:
        metrics.count_error(e.kind)
        return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)

    @router.get("", summary="server metadata")
    async def meta() -> dict[str, Any]:
        return server_metadata()

    @router.get("/health/live", summary="alive", response_class=Response, responses=no_body("alive"))
    async def live() -> Response:
        return Response(status_code=200)

    @router.get("/health/ready", summary="ready (503 while warming up or shutting down)", response_class=Response,
                responses={**no_body("ready"), 503: {"description": "not ready (no body)"}})
    async def ready() -> Response:
        return Response(status_code=200 if engine.ready() and not draining() else 503)

    async def describe(name: str, version: str | None, what: str) -> Response:
        try:
            m = model()
            m.check(name, version)
            if what == "ready":
                return Response(status_code=200 if m.ready() and not draining() else 503)
            return JSONResponse(m.metadata() if what == "metadata" else m.config())  # config: as Triton answers
        except RequestError as e:
            return refuse(e)

    async def infer(request: Request, name: str, version: str | None) -> Response:
        metrics.in_flight.inc()
        try:
            m = model()
            m.check(name, version)
            if draining():
                raise RequestError(503, "not_ready", "not ready: shutting down", {"Retry-After": "1"})
            req = parse_rest_request(await request.body(), request.headers.get(HEADER))
            outputs = await m.infer(req)
            body, headers = rest_response(m.name, "1", req, outputs)
            return Response(body, headers=headers)
        except RequestError as e:
            return refuse(e)
        finally:
            metrics.in_flight.dec()

    for prefix in ("/models/{name}", "/models/{name}/versions/{version}"):
        router.add_api_route(prefix, _bind(describe, "metadata"), methods=["GET"], summary="model metadata",
                             responses=errors(404))
        router.add_api_route(prefix + "/ready", _bind(describe, "ready"), methods=["GET"], summary="model ready",
                             response_class=Response, responses={**no_body("ready"), **errors(404),
                                                                 503: {"description": "not ready (no body)"}})
        router.add_api_route(prefix + "/config", _bind(describe, "config"), methods=["GET"],
                             summary="model configuration (Triton ModelConfig)", responses=errors(404))
        router.add_api_route(prefix + "/infer", _infer_route(infer), methods=["POST"], summary="inference",
                             responses={200: {"description": "the inference response (JSON, or JSON + binary "
                                                             "tensors with the binary tensor data extension)",
                                              "content": {"application/json": {}, "application/octet-stream": {}}},
                                        **errors(*INFER_ERRORS)})
    return router


def _bind(describe: Callable[..., Any], what: str) -> Callable[..., Any]:
    async def route(name: str, version: str | None = None) -> Response:
        return await describe(name, version, what)

    return route


def _infer_route(infer: Callable[..., Any]) -> Callable[..., Any]:
    async def route(request: Request, name: str, version: str | None = None) -> Response:
        return await infer(request, name, version)

    return route
