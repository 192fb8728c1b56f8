"""The FastAPI app: `POST /chatkit`, `GET /health`, error mapping and the app's lifespan.

Run it with `python -m <package> serve` (or any ASGI server: `<package>.main:app`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import psycopg
from chatkit.errors import ErrorCode
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import (
    AttachmentsDeleteReq,
    ChatKitReq,
    ErrorEvent,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    is_streaming_req,
)
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from psycopg_pool import PoolTimeout
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .attachments import AttachmentTooLarge, PostgresAttachmentStore, install_attachment_routes
from .context import RequestContext, get_request_context
from .embedded import stop_embedded
from .logs import configure_logging
from .respond import ModelGateway
from .responses import error_response
from .server import ChatServer
from .settings import EMBEDDED, Settings, get_settings
from .store import PostgresStore

logger = logging.getLogger(__name__)

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


FREEZE_AFTER_REQUESTS = frozenset({100, 1_000})


def freeze_long_lived_objects(*, collect: bool = True) -> None:
    """Put every object alive now out of the cyclic garbage collector's way (`gc.freeze`).

    The SDKs leave a few hundred thousand long-lived objects (modules, types, schemas);
    without this each full collection walks them all and stalls the event loop for 100-200
    ms, which shows up as p99 latency. Done at startup (after a full collection) and again,
    without collecting (a full collection is itself such a stall), after the first requests,
    once lazy imports and caches have settled.
    """
    if collect:
        gc.collect()
    gc.freeze()


class RequestTooLarge(Exception):
    """The request body is over MAX_REQUEST_BYTES (answered with 413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (RequestTooLarge) anything over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge
    return bytes(body)


def describe_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    """Where and why a ChatKit request is invalid, without echoing its content."""
    return [
        {"loc": ".".join(str(part) for part in err["loc"]), "msg": err["msg"]}
        for err in exc.errors(include_input=False, include_url=False)[:10]
    ]


async def check_targets(request: ChatKitReq, store: PostgresStore, context: RequestContext) -> None:
    """Load what a streaming request names (thread, item, attachments): a missing one is a 404.

    The SDK only fails once a stream is read, after the 200 has gone out; checking first
    keeps "not found" a proper 404 for streaming requests too. Non-streaming requests need
    no check (the SDK raises NotFoundError before it answers), except `attachments.delete`,
    which the store treats as a no-op for an id it does not find.
    """
    if isinstance(request, AttachmentsDeleteReq):
        await store.load_attachment(request.params.attachment_id, context)
    if not is_streaming_req(request):
        return
    if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
        for attachment_id in request.params.input.attachments:
            await store.load_attachment(attachment_id, context)
    thread_id: str | None = getattr(getattr(request, "params", None), "thread_id", None)
    if thread_id is None:
        return
    await store.load_thread(thread_id, context)
    named = ThreadsAddStructuredInputReq | ThreadsRetryAfterItemReq | ThreadsCustomActionReq
    item_id = request.params.item_id if isinstance(request, named) else None
    if item_id is not None:
        await store.load_item(thread_id, item_id, context)


def has_nul(value: Any) -> bool:
    """Whether a decoded JSON value holds a NUL character anywhere (PostgreSQL refuses them)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def refuses_nul(body: bytes) -> bool:
    """True for a body whose text holds an escaped NUL (`\\u0000`), which cannot be stored."""
    if b"\\u0000" not in body:
        return False
    try:
        return has_nul(json.loads(body))
    except ValueError:
        return False


async def guard_stream(stream: StreamingResult) -> AsyncIterator[bytes]:
    """Pass the SDK's events through; a failure mid-stream becomes an error event, not a cut."""
    try:
        async for chunk in stream:
            yield chunk
    except Exception:
        logger.exception("stream failed")
        event = ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True)
        yield b"data: " + event.model_dump_json().encode() + b"\n\n"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Settings come from the environment and `.env` unless given."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    store = PostgresStore(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout,
    )
    gateway = ModelGateway(settings)
    attachments = PostgresAttachmentStore(store, settings)
    server = ChatServer(store, gateway, attachments)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await store.open()
        except Exception as exc:  # the app still starts; /health reports 503 until it is back
            logger.warning("database not reachable at startup: %s", type(exc).__name__)
        freeze_long_lived_objects()
        yield
        await gateway.close()
        await store.close()
        if settings.database_url == EMBEDDED:
            # Release the development server here: uvicorn ends the process with the signal
            # that stopped it, so exit handlers would not run.
            await asyncio.to_thread(stop_embedded, settings.embedded_data_dir)

    app = FastAPI(title=__package__ or "chatkit", lifespan=lifespan)
    app.state.settings, app.state.store, app.state.server = settings, store, server
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_error_handlers(app)
    install_attachment_routes(app, attachments)
    served = itertools.count(1)

    @app.post("/chatkit", response_model=None)
    async def chatkit_endpoint(
        request: Request, context: Annotated[RequestContext, Depends(get_request_context)]
    ) -> Response:
        """The ChatKit protocol: SSE for streaming requests, JSON otherwise."""
        if next(served) in FREEZE_AFTER_REQUESTS:
            freeze_long_lived_objects(collect=False)
        try:
            body = await read_body(request, settings.max_request_bytes)
        except RequestTooLarge:
            limit = settings.max_request_bytes
            return error_response(413, "too_large", f"request body over {limit} bytes")
        if refuses_nul(body):
            return error_response(400, "invalid_request", "text may not contain NUL characters")
        try:
            parsed = CHATKIT_REQUEST.validate_json(body)
        except ValidationError as exc:
            return error_response(
                400,
                "invalid_request",
                "not a valid ChatKit request",
                details=describe_validation_error(exc),
            )
        try:
            await check_targets(parsed, store, context)
            result = await server.process_request(parsed, context)
        except NotFoundError:
            return error_response(404, "not_found", "no such thread, item or attachment")
        except AttachmentTooLarge as exc:
            return error_response(413, "too_large", str(exc))
        except (ValueError, NotImplementedError, RuntimeError) as exc:
            # The SDK raises these for requests this server cannot honour (e.g. an item of
            # the wrong type, or attachments without an attachment store).
            logger.info("rejected %s: %s", parsed.type, type(exc).__name__)
            return error_response(400, "unsupported", str(exc)[:300])
        if isinstance(result, StreamingResult):
            return StreamingResponse(
                guard_stream(result), media_type="text/event-stream", headers=SSE_HEADERS
            )
        return Response(content=result.json, media_type="application/json")

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 when the database answers, 503 when it does not."""
        if await store.ping():
            return JSONResponse({"status": "ok", "database": "ok"})
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)

    if settings.serves_chat_page:
        from .page import install_chat_page

        install_chat_page(app, settings)
    app.add_middleware(RequestLogMiddleware)
    return app


class RequestLogMiddleware:
    """One log line per request: method, path, status and time to the response head.

    Plain ASGI (no BaseHTTPMiddleware), so streams pass through untouched and unbuffered.
    """

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


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app returns is JSON in the same shape; no stack trace leaves the server."""

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
        logger.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            503, "database_unavailable", "the database is not reachable; try again shortly"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal", "internal server error")


@functools.cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> Any:
    """`<package>.main:app`, built on first access so importing this module reads no settings."""
    if name == "app":
        return _default_app()
    raise AttributeError(name)
