"""The one JSON error shape, `{"error": {"code", "message", ...}}`, and the handlers that map
exceptions to it: an AppError carries its status, anything unexpected is an opaque 500."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from chatkit.store import NotFoundError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

MAX_EXCERPT_CHARS = 200
"""The most of a client's input an error message repeats (`excerpt`)."""
MAX_ERROR_MESSAGE_CHARS = 600


def excerpt(value: object, limit: int = MAX_EXCERPT_CHARS) -> str:
    """`repr` of a client-supplied value for an error message, cut to `limit` characters."""
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """`{"error": {"code", "message", ...}}` with the given HTTP status (a message is cut to
    MAX_ERROR_MESSAGE_CHARS, so no error repeats much of what a client sent)."""
    if len(message) > MAX_ERROR_MESSAGE_CHARS:
        message = message[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"
    body = {"error": {"code": code, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


class AppError(Exception):
    """An error with its HTTP answer: status, machine-readable code and a readable message."""

    status = 400
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.code = code or self.code
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JSONResponse:
        """The JSON error answer (`extra` fields go beside code and message)."""
        return error_response(
            self.status, self.code, self.message, headers=self.headers, **self.extra
        )


class MissingApiKeyError(Exception):
    """OPENAI_API_KEY is not configured; raised when a message needs the model."""


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception a route can raise to the JSON error shape."""

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return exc.response()

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> Response:
        return error_response(404, "not_found", "no such thread, item or attachment")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "error")
        return error_response(exc.status_code, code, exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return error_response(400, "invalid_request", "invalid request")

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # No line per request: store/health.py logs the outage (start, each minute, end).
        logger.debug("database unavailable: %s", type(exc).__name__)
        return error_response(
            503, "database_unavailable", "the database is not reachable; try again shortly"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal", "internal server error")
