"""The HTTP API: `POST /chatkit` (the ChatKit protocol) and `GET /health`.

The endpoint reads the body within its size limit, parses it once, and checks everything it
can before a stream starts: what the request names must exist and belong to the user (404),
and actions, client tool outputs and audio must be ones this server can handle (400/413).
The SDK would report those inside a 200 stream, which clients cannot tell from a failure of
the model. Then it hands the parsed request to the ChatKit server (server.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from chatkit.errors import ErrorCode
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import (
    AttachmentsDeleteReq,
    ChatKitReq,
    ClientToolCallItem,
    ErrorEvent,
    InputTranscribeReq,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    WidgetItem,
    is_streaming_req,
)
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError

from .actions import InvalidActionError, parse_action
from .attachments import AttachmentTooLarge
from .context import RequestContext, get_request_context
from .dictation import check_audio
from .errors import AppError, error_response
from .gc_tuning import count_request
from .server import ChatServer
from .settings import Settings
from .store import PostgresStore

logger = logging.getLogger(__name__)

router = APIRouter()

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
JSON_OVERHEAD_BYTES = 64 * 1024
"""Room for the JSON around a transcription request's base64 audio."""


class RequestTooLarge(Exception):
    """The request body is over its limit (answered with 413)."""


def body_limit(settings: Settings) -> int:
    """The most a request body may hold: MAX_REQUEST_BYTES, or more for dictation audio
    (base64 makes MAX_AUDIO_BYTES a third larger); other requests are held to
    MAX_REQUEST_BYTES once parsed."""
    audio = -(-settings.max_audio_bytes // 3) * 4 + JSON_OVERHEAD_BYTES
    return max(settings.max_request_bytes, audio)


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
    item = await store.load_item(thread_id, item_id, context) if item_id is not None else None
    if isinstance(request, ThreadsCustomActionReq):
        if item is not None and not isinstance(item, WidgetItem):
            raise InvalidActionError("actions come from widget items; that item is not a widget")
        parse_action(request.params.action, item)
    elif isinstance(request, ThreadsAddClientToolOutputReq):
        await check_pending_client_tool_call(store, thread_id, context)


async def check_pending_client_tool_call(
    store: PostgresStore, thread_id: str, context: RequestContext
) -> None:
    """A client tool output needs a pending client tool call as the thread's newest item."""
    newest = await store.load_thread_items(thread_id, None, 1, "desc", context)
    if not newest.data or not (
        isinstance(newest.data[0], ClientToolCallItem) and newest.data[0].status == "pending"
    ):
        raise AppError("the thread has no pending client tool call", code="no_pending_tool_call")


async def guard_stream(stream: StreamingResult) -> AsyncIterator[bytes]:
    """Pass the SDK's events through; a failure mid-stream becomes an error event, not a cut."""
    try:
        async for chunk in stream:
            yield chunk
    except Exception:
        logger.exception("stream failed")
        event = ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True)
        yield b"data: " + event.model_dump_json().encode() + b"\n\n"


async def parse_request(request: Request, settings: Settings) -> ChatKitReq:
    """The body as a ChatKit request, or an AppError (400/413)."""
    try:
        body = await read_body(request, body_limit(settings))
    except RequestTooLarge:
        raise AppError(
            f"request body over {body_limit(settings)} bytes", status=413, code="too_large"
        ) from None
    if refuses_nul(body):
        raise AppError("text may not contain NUL characters")
    try:
        parsed = CHATKIT_REQUEST.validate_json(body)
    except ValidationError as exc:
        details = describe_validation_error(exc)
        raise AppError("not a valid ChatKit request", details=details) from None
    if isinstance(parsed, InputTranscribeReq):
        check_audio(parsed.params, settings.max_audio_bytes)
    elif len(body) > settings.max_request_bytes:
        raise AppError(
            f"request body over {settings.max_request_bytes} bytes", status=413, code="too_large"
        )
    return parsed


@router.post("/chatkit", response_model=None)
async def chatkit_endpoint(
    request: Request, context: Annotated[RequestContext, Depends(get_request_context)]
) -> Response:
    """The ChatKit protocol: SSE for streaming requests, JSON otherwise."""
    count_request()
    settings: Settings = request.app.state.settings
    server: ChatServer = request.app.state.server
    parsed = await parse_request(request, settings)
    try:
        await check_targets(parsed, server.store, context)
        result = await server.process_request(parsed, context)
    except NotFoundError:
        return error_response(404, "not_found", "no such thread, item or attachment")
    except AttachmentTooLarge as exc:
        return error_response(413, "too_large", str(exc))
    except AppError as exc:
        return exc.response()
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


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    store: PostgresStore = request.app.state.store
    if await store.ping():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
