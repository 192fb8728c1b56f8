"""The HTTP API: `POST /chatkit` (the ChatKit protocol) and `GET /health`.

The endpoint reads the body within its size limit, parses it once, and checks everything it
can before a stream starts: what the request names must exist and belong to the user (404),
and actions, client tool outputs and audio must be ones this server can handle (400/413).
The SDK would report those inside a 200 stream, which clients cannot tell from a failure of
the model. Sizes are bounded (400): attachments per message (a repeated id counts once),
message text, thread titles, feedback ids. A streamed request then takes its turn under the
user's limits (limits.py: 429 with Retry-After), and the parsed request goes to the ChatKit
server (server.py); when its stream ends, however it ends, the turn is finished: the stream
lease released and the model usage recorded, in one statement.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
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
    ItemsFeedbackReq,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsUpdateReq,
    UserMessageInput,
    UserMessageTagContent,
    UserMessageTextContent,
    WidgetItem,
    is_streaming_req,
)
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from .actions import InvalidActionError, parse_action
from .attachments import AttachmentTooLarge
from .context import RequestContext, get_request_context
from .dictation import check_audio
from .errors import AppError, error_response
from .gc_tuning import count_request
from .limits import Turn, run_shielded, start_turn
from .server import ChatServer
from .settings import Settings
from .store import PostgresStore

logger = logging.getLogger(__name__)

router = APIRouter()

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
JSON_OVERHEAD_BYTES = 64 * 1024
"""Room for the JSON around a transcription request's base64 audio."""
MAX_TITLE_CHARS = 200
"""Longest thread title `threads.update` accepts (generated titles are far shorter)."""
MAX_FEEDBACK_IDS = 100
"""Most item ids one `items.feedback` request may name."""


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
    """Whether a decoded JSON value holds a NUL character anywhere (PostgreSQL refuses them).

    Iterative, so no nesting depth can exhaust the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def refuses_nul(body: bytes) -> bool:
    """True for a body whose text holds an escaped NUL (`\\u0000`), which cannot be stored.

    Only a body with that escape is decoded here. One nested too deeply for `json` (about
    1,000 levels) is left to the validator, whose own depth limit is lower: a 400 either way.
    """
    if b"\\u0000" not in body:
        return False
    try:
        return has_nul(json.loads(body))
    except (ValueError, RecursionError):
        return False


def message_chars(message: UserMessageInput) -> int:
    """The characters of a message the model reads: text parts, tags and quoted text."""
    count = len(message.quoted_text or "")
    for part in message.content:
        if isinstance(part, UserMessageTextContent):
            count += len(part.text)
        elif isinstance(part, UserMessageTagContent):
            count += len(part.text) + len(json.dumps(part.data, ensure_ascii=False))
    return count


def check_sizes(request: ChatKitReq, settings: Settings) -> None:
    """Refuse (400) what is over a size limit; collapse repeated attachment ids, in place.

    Runs before any database work. A message's attachment ids keep their first occurrence
    and order (the SDK would otherwise load, store and send each repeat).
    """
    if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
        message = request.params.input
        message.attachments = list(dict.fromkeys(message.attachments))
        most = settings.max_attachments_per_message
        if len(message.attachments) > most:
            raise AppError(
                f"a message may carry at most {most} attachments", code="too_many_attachments"
            )
        if message_chars(message) > settings.max_message_chars:
            raise AppError(
                f"message text over {settings.max_message_chars} characters",
                code="message_too_long",
            )
    elif isinstance(request, ThreadsAddStructuredInputReq):
        answers = request.params.input.answers.values()
        chars = sum(len(value) for answer in answers for value in answer.values)
        if chars > settings.max_message_chars:
            raise AppError(
                f"answers over {settings.max_message_chars} characters", code="message_too_long"
            )
    elif isinstance(request, ThreadsUpdateReq) and len(request.params.title) > MAX_TITLE_CHARS:
        raise AppError(f"title over {MAX_TITLE_CHARS} characters", code="title_too_long")
    elif isinstance(request, ItemsFeedbackReq) and len(request.params.item_ids) > MAX_FEEDBACK_IDS:
        raise AppError(
            f"feedback names at most {MAX_FEEDBACK_IDS} items at once", code="too_many_items"
        )


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


async def guard_stream(stream: StreamingResult) -> AsyncGenerator[bytes, None]:
    """Pass the SDK's events through; a failure mid-stream becomes an error event, not a cut.

    Closing this generator closes the SDK's too, so its cleanup runs then, not whenever the
    garbage collector gets to it.
    """
    events = stream.json_events
    try:
        async for chunk in events:
            yield chunk
    except Exception:
        logger.exception("stream failed")
        event = ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True)
        yield b"data: " + event.model_dump_json().encode() + b"\n\n"
    finally:
        await events.aclose()


class TurnStream(StreamingResponse):
    """A turn's SSE answer; when it ends (done, failed, the client gone, or never started),
    the turn is finished: its stream lease released and its model usage recorded.

    That statement runs once the response has ended, so the client never waits for it (a
    next request on the connection is served meanwhile); a stream's slot is free again a
    moment after its last byte.
    """

    def __init__(self, events: AsyncGenerator[bytes, None], turn: Turn | None) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self.events = events
        self.turn = turn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await run_shielded(self._end())

    async def _end(self) -> None:
        await self.events.aclose()  # an interrupted stream counts its model usage here
        if self.turn is not None:
            await self.turn.finish()


async def parse_request(request: Request, settings: Settings) -> ChatKitReq:
    """The body as a ChatKit request, or an AppError (400/413)."""
    try:
        body = await read_body(request, body_limit(settings))
    except RequestTooLarge:
        raise AppError(
            f"request body over {body_limit(settings)} bytes", status=413, code="too_large"
        ) from None
    except ClientDisconnect:
        # The client went away mid-body: nothing to answer, nothing went wrong here.
        logger.info("client disconnected before its request body was complete")
        raise AppError("the request body was cut off", code="incomplete_body") from None
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
    turn: Turn | None = None
    try:
        check_sizes(parsed, settings)
        await check_targets(parsed, server.store, context)
        turn = await start_turn(parsed, server.store, context, settings)
        try:
            result = await server.process_request(parsed, context)
        except BaseException:
            if turn is not None:
                await run_shielded(turn.finish())
            raise
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
        return TurnStream(guard_stream(result), turn)
    return Response(content=result.json, media_type="application/json")


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    store: PostgresStore = request.app.state.store
    if await store.ping():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
