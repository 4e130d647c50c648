"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`, the stubs `tritonclient` ships), on
grpcio's asyncio server in the same process and event loop as the HTTP app, on the same `OipModel` (so the same
batcher, the same checks and errors as REST).

ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata, ModelConfig and ModelInfer are answered; the
rest (shared memory, repository control, statistics, streaming) is UNIMPLEMENTED. A refusal is the gRPC status
matching the REST one (400 INVALID_ARGUMENT, 404 NOT_FOUND, 413 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 504
DEADLINE_EXCEEDED, 500 INTERNAL), counted in `/metrics` as REST's are.
"""
from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

from ..errors import InputError
from .engine import Engine
from .inputs import RequestError, bad_request
from .metrics import ServeMetrics
from .oip_model import VERSION, OipModel
from .oip_rest import server_metadata
from .oip_tensors import DTYPES, InferRequest, Tensor, array_from_bytes, check_shape, datatype_of, tensor_bytes
from .settings import ServeSettings

STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
          413: grpc.StatusCode.RESOURCE_EXHAUSTED, 501: grpc.StatusCode.UNIMPLEMENTED,
          503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
            "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
            "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _param_value(p: Any) -> Any:
    kind = p.WhichOneof("parameter_choice")
    return getattr(p, kind) if kind else None


def infer_request(msg: Any) -> InferRequest:
    """ModelInferRequest -> InferRequest (raw_input_contents in input order, else the typed contents)."""
    if msg.raw_input_contents and len(msg.raw_input_contents) != len(msg.inputs):
        raise bad_request(f"raw_input_contents: {len(msg.raw_input_contents)} entries for {len(msg.inputs)} inputs")
    tensors = []
    for i, t in enumerate(msg.inputs):
        if t.datatype not in DTYPES:
            raise bad_request(f"input {t.name!r}: datatype {t.datatype!r} is not one of {', '.join(DTYPES)}")
        shape = check_shape(t.name, [int(d) for d in t.shape])
        if msg.raw_input_contents:
            arr = array_from_bytes(t.name, t.datatype, shape, msg.raw_input_contents[i])
        elif t.datatype in CONTENTS and t.HasField("contents"):
            values = list(getattr(t.contents, CONTENTS[t.datatype]))
            if len(values) != int(np.prod(shape)):
                raise bad_request(f"input {t.name!r}: {len(values)} values for shape {shape}")
            arr = (np.array(values, dtype=np.object_) if t.datatype == "BYTES"
                   else np.asarray(values, dtype=DTYPES[t.datatype])).reshape(shape)
        else:
            raise bad_request(f"input {t.name!r}: no data (neither raw_input_contents nor contents)")
        tensors.append(Tensor(t.name, t.datatype, shape, arr))
    params = {k: _param_value(v) for k, v in msg.parameters.items()}
    return InferRequest(tensors, params, outputs=[o.name for o in msg.outputs] or None, id=msg.id)


def infer_response(name: str, req: InferRequest, outputs: list[tuple[str, np.ndarray]]) -> Any:
    resp = service_pb2.ModelInferResponse(model_name=name, model_version=VERSION, id=req.id)
    for out_name, arr in outputs:
        resp.outputs.add(name=out_name, datatype=datatype_of(arr), shape=list(arr.shape))
        resp.raw_output_contents.append(tensor_bytes(arr))
    return resp


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """GRPCInferenceService over an `OipModel`."""

    def __init__(self, model: OipModel, metrics: ServeMetrics, draining: Callable[[], bool]):
        self.model, self.metrics, self.draining = model, metrics, draining

    async def _refuse(self, context: Any, e: RequestError) -> None:
        self.metrics.count_error(e.kind)
        await context.abort(STATUS.get(e.status, grpc.StatusCode.INTERNAL), e.message)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        return service_pb2.ServerReadyResponse(ready=self.model.ready() and not self.draining())

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        m = server_metadata()
        return service_pb2.ServerMetadataResponse(name=m["name"], version=m["version"], extensions=m["extensions"])

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            self.model.check(request.name, request.version)
        except RequestError:
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=self.model.ready() and not self.draining())

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            self.model.check(request.name, request.version)
            m = self.model.metadata()
        except RequestError as e:
            return await self._refuse(context, e)
        tensors = lambda ts: [service_pb2.ModelMetadataResponse.TensorMetadata(  # noqa: E731
            name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in ts]
        return service_pb2.ModelMetadataResponse(name=m["name"], versions=m["versions"], platform=m["platform"],
                                                 inputs=tensors(m["inputs"]), outputs=tensors(m["outputs"]))

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        try:
            self.model.check(request.name, request.version)
            config = json_format.ParseDict(self.model.config(), model_config_pb2.ModelConfig())
        except RequestError as e:
            return await self._refuse(context, e)
        return service_pb2.ModelConfigResponse(config=config)

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        self.metrics.in_flight.inc()
        try:
            self.model.check(request.model_name, request.model_version)
            if self.draining():
                raise RequestError(503, "not_ready", "not ready: shutting down")
            req = infer_request(request)
            return infer_response(self.model.name, req, await self.model.infer(req))
        except RequestError as e:
            return await self._refuse(context, e)
        finally:
            self.metrics.in_flight.dec()


def check_port(host: str, port: int) -> None:
    """InputError naming --grpc-port when host:port cannot be bound (in use, no such address); port 0 is free."""
    if port == 0:
        return
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.bind(addr)
    except OSError as e:
        raise InputError(f"--grpc-port {port}: cannot listen on {host} ({e.strerror or e})") from None


def attach_grpc(app: Any, engine: Engine, settings: ServeSettings, metrics: ServeMetrics, host: str, port: int,
                log: Callable[[str], None]) -> None:
    """Run the gRPC front end with `app`'s lifespan (started after the engine, stopped before it drains). A port
    that cannot be bound is an InputError here, before anything starts."""
    check_port(host, port)
    inner, flag = app.router.lifespan_context, {"draining": False}
    begin_drain = app.state.begin_drain

    def drain_both() -> None:
        flag["draining"] = True
        begin_drain()

    app.state.begin_drain = drain_both

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            limit = max(settings.max_body_bytes, 1024)
            server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0),
                                              ("grpc.max_send_message_length", 1 << 30)])
            draining = lambda: flag["draining"]  # noqa: E731
            service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
                InferenceServicer(OipModel(engine, settings, metrics, getattr(app.state, "pixel_budget", None)),
                                  metrics, draining), server)
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            bound = server.add_insecure_port(address)
            if not bound:
                raise RuntimeError(f"--grpc-port {port}: cannot listen on {host}")
            await server.start()
            shown = f"[{host}]" if ":" in host else host
            log(f"gRPC (Open Inference Protocol) at grpc://{shown}:{bound}")
            try:
                yield state
            finally:
                await server.stop(grace=min(settings.timeout_s, 5.0))

    app.router.lifespan_context = lifespan
