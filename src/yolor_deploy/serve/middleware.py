"""ASGI wrappers around the app: the request-body cap, the content type a route takes, and per-request metrics.

The body cap answers 413 before the body is read when Content-Length declares too much, and stops a streamed
(chunked) body as soon as it passes the cap; nothing beyond the cap is kept. Before the 413 goes out, the rest of
the body is read and thrown away (at most `DRAIN_BYTES`, `DRAIN_SECONDS`): a server that closes a socket with
unread data makes the kernel send a reset, and the client would see "connection reset" instead of the 413.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException

from .metrics import ServeMetrics

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DRAIN_BYTES = 64 << 20
DRAIN_SECONDS = 10.0


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the cap; FastAPI passes HTTPExceptions through."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body exceeds the limit of {limit:,} bytes (the server's --max-body-mb)")


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", []):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None


async def _discard(receive: Receive, budget: int) -> None:
    """Read and drop what is left of a request body: up to `budget` bytes, DRAIN_SECONDS at most."""
    async def run() -> None:
        left = budget
        while left >= 0:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            left -= len(msg.get("body", b""))
            if not msg.get("more_body", False):
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(run(), DRAIN_SECONDS)


class BodyLimitMiddleware:
    """413 for a request body above `max_bytes` (declared or streamed); `on_reject()` counts it."""

    def __init__(self, app: ASGIApp, max_bytes: int, on_reject: Callable[[], None]):
        self.app, self.max_bytes, self.on_reject = app, max_bytes, on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared - self.max_bytes <= DRAIN_BYTES:
                await _discard(receive, declared)
            self.on_reject()
            await _send_json(send, 413, {"error": BodyTooLarge(self.max_bytes).detail, "kind": "body_too_large"})
            return
        seen, state = 0, {"ended": False, "exceeded": False}

        async def capped_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                state["ended"] = not msg.get("more_body", False)
                if seen > self.max_bytes:
                    state["exceeded"] = True
                    raise BodyTooLarge(self.max_bytes)
            return msg

        async def draining_send(msg: Message) -> None:
            if msg["type"] == "http.response.start" and state["exceeded"] and not state["ended"]:
                state["ended"] = True
                await _discard(receive, DRAIN_BYTES)
            await send(msg)

        await self.app(scope, capped_receive, draining_send)


class BodyTimedOut(HTTPException):
    """Raised from `receive` when the body has not all arrived by its deadline."""

    def __init__(self, timeout_s: float):
        super().__init__(408, f"request body not received within {timeout_s:g} s (the server's --body-timeout-s)",
                         headers={"Connection": "close"})  # the rest of the body is not waited for


class BodyTimeoutMiddleware:
    """408 when a request body has not all arrived `timeout_s` after the app first asks for it (a client that
    declares a body and then trickles or stalls holds a connection, a request slot and its buffers). The
    exception is answered (and counted) by the app's HTTPException handler."""

    def __init__(self, app: ASGIApp, timeout_s: float):
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = {"deadline": None, "done": False}

        async def timed_receive() -> Message:
            if state["done"]:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            loop = asyncio.get_running_loop()
            if state["deadline"] is None:
                state["deadline"] = loop.time() + self.timeout_s
            try:
                msg = await asyncio.wait_for(receive(), max(state["deadline"] - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise BodyTimedOut(self.timeout_s) from None
            if msg["type"] != "http.request" or not msg.get("more_body", False):
                state["done"] = True
            return msg

        await self.app(scope, timed_receive, send)


def _media_type(scope: Scope) -> str:
    for k, v in scope.get("headers", []):
        if k == b"content-type":
            return v.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


class ContentTypeMiddleware:
    """415 for a POST to a path in `routes` whose Content-Type is not the one it takes (e.g. `/v1/detect`:
    multipart/form-data), before the body is parsed (FastAPI would otherwise try it as JSON and answer that the
    image is missing); the body is read and dropped first, as for the 413. `on_reject()` counts it."""

    def __init__(self, app: ASGIApp, routes: dict[str, str], on_reject: Callable[[], None]):
        self.app, self.routes, self.on_reject = app, routes, on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        want = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        got = _media_type(scope) if want else ""
        if want is None or scope.get("method") != "POST" or got == want:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        await _discard(receive, min(declared if declared is not None else DRAIN_BYTES, DRAIN_BYTES))
        self.on_reject()
        await _send_json(send, 415, {"error": f"content type {got or '(none)'!s}: {scope['path']} takes {want} "
                                              f"(send images as the form field 'image')",
                                     "kind": "unsupported_media_type"})


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


class MetricsMiddleware:
    """Counts every HTTP request by endpoint and status and observes its latency."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), 500

        async def recording_send(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = int(msg["status"])
            await send(msg)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.observe_request(scope.get("path", ""), status, time.perf_counter() - t0)
