"""HTTP middleware: one log line per request; ids PostgreSQL cannot store refused up front."""

from __future__ import annotations

import logging
import time
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import error_response

logger = logging.getLogger(__name__)


class RequestLogMiddleware:
    """One log line per request (method, path, status, time to the response head); plain ASGI,
    so streams pass through unbuffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_and_log(message: Message) -> None:
            if message["type"] == "http.response.start":
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": message["status"],
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            await send(message)

        await self.app(scope, receive, send_and_log)


class RefuseNulMiddleware:
    """A NUL (`%00`) in a path or query, which PostgreSQL cannot store, is a 400 on every route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope["query_string"])
        ):
            response = error_response(400, "invalid_request", "ids may not contain NUL characters")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
