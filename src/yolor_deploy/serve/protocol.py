"""The HTTP/1.1 connection guard under the app: header size, request line and slow clients.

uvicorn's default parser (httptools) has no limit on a request header: one client sending a 128 MB header was
read for 19 s while another's `/health` waited 18 s. `serve` runs uvicorn's h11 protocol instead, whose buffer
for an incomplete request head is capped (`--max-header-kb`), with two answers h11 does not give:

- a head over the cap is 431 (Request Header Fields Too Large), or 414 (URI Too Long) when even the request
  line does not end within it (uvicorn would say 400 "Invalid HTTP request"), JSON like every other refusal;
- a request head not complete within `--header-timeout-s` of the connection (or of the previous response on a
  kept-alive connection) is 408 and the connection is closed (a client trickling a header a byte at a time
  held its connection, and a slot, forever).

The body's deadline (`--body-timeout-s`) is an ASGI middleware (`middleware.BodyTimeoutMiddleware`).
"""
from __future__ import annotations

import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def _raw_json(status: int, reason: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
            f"connection: close\r\n\r\n").encode() + data


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with 431/414 for an oversized head and a deadline for the head to arrive."""

    header_timeout_s = 10.0  # set per server by `guarded_protocol`
    max_header_bytes = 64 * 1024

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: Any = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request head has arrived (or the connection ended)
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()  # the next request's head has its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.transport.write(_raw_json(408, "Request Timeout", {
            "error": f"request head not received within {self.header_timeout_s:g} s (the server's "
                     f"--header-timeout-s)", "kind": "header_timeout"}))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        buffered = self.conn.trailing_data[0]
        if len(buffered) <= self.max_header_bytes:
            super().send_400_response(msg)
            return
        if b"\r\n" not in buffered[: self.max_header_bytes]:
            status, reason, kind, what = 414, "URI Too Long", "request_line_too_long", "request line"
        else:
            status, reason, kind, what = 431, "Request Header Fields Too Large", "headers_too_large", "request head"
        self.transport.write(_raw_json(status, reason, {
            "error": f"{what} longer than {self.max_header_bytes:,} bytes (the server's --max-header-kb)",
            "kind": kind}))
        self.transport.close()


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> type[GuardedH11Protocol]:
    """A `GuardedH11Protocol` class with these limits (uvicorn takes a class; one per server)."""
    return type("ServeH11Protocol", (GuardedH11Protocol,),
                {"header_timeout_s": float(header_timeout_s), "max_header_bytes": int(max_header_bytes)})
