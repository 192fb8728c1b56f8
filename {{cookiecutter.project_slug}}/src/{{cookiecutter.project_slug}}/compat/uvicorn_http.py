"""uvicorn: a time and a size limit on a request's headers, which uvicorn does not have.

uvicorn's httptools protocol (what `uvicorn[standard]` runs) waits for a request's headers for
as long as the client keeps the connection open, and buffers them without a limit: slow or
endless headers hold a connection, and memory, until the client lets go. `HeaderGuardProtocol`
extends that protocol (its `data_received` and the parser callbacks `on_message_begin` and
`on_headers_complete` are uvicorn internals): a connection is closed when a request's headers
are not complete within `header_timeout` seconds of the connection opening (first request) or
of the request's first byte (later ones), and a request whose headers pass `max_header_bytes`
gets 431 before the connection closes. Idle keep-alive connections stay uvicorn's own
business (`timeout_keep_alive`); bodies are not timed here (the reverse proxy does that).
"""

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
    """uvicorn's httptools protocol with a deadline and a size limit for request headers.

    Give it to uvicorn as `http=functools.partial(HeaderGuardProtocol, header_timeout=...,
    max_header_bytes=...)` (a partial pickles, so `--workers` and `--reload` keep it).
    """

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
