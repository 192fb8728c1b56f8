"""uvicorn: a deadline and a size limit (431) for a request's headers, which uvicorn's httptools
protocol lacks (docs/design_decisions.md, "Slow and oversized headers")."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_MESSAGE = b"request header fields too large"
HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _MESSAGE
)


class HeaderGuardProtocol(HttpToolsProtocol):
    """Give it to uvicorn as `http=functools.partial(HeaderGuardProtocol, ...)` (a partial
    pickles, so `--workers` and `--reload` keep it)."""

    def __init__(self, *args: Any, header_timeout: float, max_header_bytes: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.header_timer: asyncio.TimerHandle | None = None
        self.header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_header_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_header_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.header_timer is None:  # between requests, or reading a body
            return
        self.header_bytes += len(data)
        if self.header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self.stop_header_clock()
            self.transport.write(HEADERS_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.header_timer is None:
            self.start_header_clock()

    def on_headers_complete(self) -> None:
        self.stop_header_clock()
        super().on_headers_complete()

    def start_header_clock(self) -> None:
        self.header_bytes = 0
        self.header_timer = self.loop.call_later(self.header_timeout, self.headers_too_slow)

    def stop_header_clock(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def headers_too_slow(self) -> None:
        self.header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
