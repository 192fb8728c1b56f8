"""Reading a /chatkit request: the body within its limit, parsed once, sizes bounded (400/413)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from chatkit.types import (
    AttachmentsCreateReq,
    ChatKitReq,
    InputTranscribeReq,
    ItemsFeedbackReq,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsSyncCustomActionReq,
    ThreadsUpdateReq,
    UserMessageInput,
    UserMessageTagContent,
    UserMessageTextContent,
)
from fastapi import Request
from pydantic import TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect

from ..agent.entity_types import check_tags
from ..chat.dictation import check_audio
from ..errors import MAX_EXCERPT_CHARS, AppError
from ..settings import Settings
from ..store.attachment_store import MAX_ATTACHMENT_NAME_CHARS

logger = logging.getLogger(__name__)

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
JSON_OVERHEAD_BYTES = 64 * 1024
"""Room for the JSON around a transcription request's base64 audio."""
MAX_TITLE_CHARS = 200
"""Longest thread title `threads.update` accepts (generated titles are far shorter)."""
MAX_FEEDBACK_IDS = 100
"""Most item ids one `items.feedback` request may name."""
MAX_ACTION_PAYLOAD_BYTES = 64 * 1024
"""Largest widget action payload (as JSON), checked before any handler parses it."""
MAX_REQUEST_METADATA_BYTES = 16 * 1024
"""Largest ChatKit request `metadata` (as JSON) that tools and handlers get (413 beyond)."""
MAX_OPTION_CHARS = 255
"""Longest `inference_options` value (a model name, a tool id), stored with the message."""
PEEK_BYTES = 256
LEADING_TYPE = re.compile(rb'\s*\{\s*"type"\s*:\s*"([a-z_.]{1,64})"')


class RequestTooLarge(Exception):
    """The request body is over `limit` (answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def body_limit(settings: Settings) -> int:
    """The largest body of any request type: MAX_REQUEST_BYTES, or more for dictation's audio."""
    return max(settings.max_request_bytes, audio_body_limit(settings))


def audio_body_limit(settings: Settings) -> int:
    """MAX_AUDIO_BYTES as base64, with room for the JSON around it."""
    return -(-settings.max_audio_bytes // 3) * 4 + JSON_OVERHEAD_BYTES


def peek_type(head: bytes) -> str | None:
    """The type when the body starts with it (`{"type": "..."`, as ChatKit.js sends), or None."""
    found = LEADING_TYPE.match(head)
    return found.group(1).decode() if found else None


async def read_body(request: Request, limit_of: Callable[[bytes], int], most: int) -> bytes:
    """The body; RequestTooLarge over `limit_of(first PEEK_BYTES)`, or `most` before them."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    if size is not None and size > most:
        raise RequestTooLarge(most)
    body = bytearray()
    limit: int | None = None
    async for chunk in request.stream():
        body += chunk
        if limit is None and len(body) >= PEEK_BYTES:
            limit = limit_of(bytes(body[:PEEK_BYTES]))
            if size is not None and size > limit:
                raise RequestTooLarge(limit)
        if len(body) > (limit or most):
            raise RequestTooLarge(limit or most)
    limit = limit_of(bytes(body[:PEEK_BYTES])) if limit is None else limit
    if len(body) > limit:
        raise RequestTooLarge(limit)
    return bytes(body)


def describe_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    """Where and why a ChatKit request is invalid, without echoing its content."""
    cut = MAX_EXCERPT_CHARS
    return [
        {"loc": ".".join(str(part) for part in err["loc"])[:cut], "msg": err["msg"][:cut]}
        for err in exc.errors(include_input=False, include_url=False)[:10]
    ]


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL anywhere (iterative: no depth exhausts the stack)."""
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
    """A body holding an escaped NUL, which PostgreSQL cannot store (one nested too deeply
    for `json` is left to the validator: a 400 either way)."""
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


def json_bytes(value: Any) -> int:
    """The size of `value` as UTF-8 JSON; AppError (400) if it is not plain JSON data."""
    try:
        return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    except (TypeError, ValueError, RecursionError):
        raise AppError("not plain JSON data (nested too deeply?)") from None


def too_large(what: str, limit: int, code: str) -> AppError:
    return AppError(f"{what} over {limit} bytes", status=413, code=code)


def message_sizes(request: ThreadsCreateReq | ThreadsAddUserMessageReq, settings: Settings) -> None:
    """A new message: options, attachments (repeats collapsed in place, first occurrence first:
    the SDK would load, store and send each repeat) and text within their limits."""
    message = request.params.input
    options = message.inference_options
    chosen = (options.model or "", options.tool_choice.id if options.tool_choice else "")
    if max(map(len, chosen)) > MAX_OPTION_CHARS:
        raise AppError(f"inference options over {MAX_OPTION_CHARS} characters")
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


def message_tags(request: ThreadsCreateReq | ThreadsAddUserMessageReq, settings: Settings) -> None:
    check_tags(request.params.input.content, settings.max_tags_per_message)


def answers_sizes(request: ThreadsAddStructuredInputReq, settings: Settings) -> None:
    answers = request.params.input.answers.values()
    chars = sum(len(value) for answer in answers for value in answer.values)
    if chars > settings.max_message_chars:
        raise AppError(
            f"answers over {settings.max_message_chars} characters", code="message_too_long"
        )


def title_sizes(request: ThreadsUpdateReq, settings: Settings) -> None:
    if len(request.params.title) > MAX_TITLE_CHARS:
        raise AppError(f"title over {MAX_TITLE_CHARS} characters", code="title_too_long")


def feedback_sizes(request: ItemsFeedbackReq, settings: Settings) -> None:
    if len(request.params.item_ids) > MAX_FEEDBACK_IDS:
        raise AppError(
            f"feedback names at most {MAX_FEEDBACK_IDS} items at once", code="too_many_items"
        )


def attachment_sizes(request: AttachmentsCreateReq, settings: Settings) -> None:
    if len(request.params.name) > MAX_ATTACHMENT_NAME_CHARS:
        raise AppError(
            f"attachment name over {MAX_ATTACHMENT_NAME_CHARS} characters", code="name_too_long"
        )


def tool_output_sizes(request: ThreadsAddClientToolOutputReq, settings: Settings) -> None:
    most = settings.max_tool_output_bytes
    if json_bytes(request.params.result) > most:
        raise too_large("client tool output", most, "tool_output_too_large")


def action_sizes(
    request: ThreadsCustomActionReq | ThreadsSyncCustomActionReq, settings: Settings
) -> None:
    """An action names its type (the SDK's model leaves a missing one unfilled) in at most
    MAX_OPTION_CHARS, and its payload is within MAX_ACTION_PAYLOAD_BYTES."""
    action = request.params.action
    if not isinstance(action.type, str):
        raise AppError(
            "not a valid ChatKit request",
            details=[{"loc": "params.action.type", "msg": "Field required"}],
        )
    if len(action.type) > MAX_OPTION_CHARS:
        raise AppError(f"action type over {MAX_OPTION_CHARS} characters")
    if json_bytes(action.payload) > MAX_ACTION_PAYLOAD_BYTES:
        raise too_large("action payload", MAX_ACTION_PAYLOAD_BYTES, "action_payload_too_large")


def audio_sizes(request: InputTranscribeReq, settings: Settings) -> None:
    check_audio(request.params, settings.max_audio_bytes)


async def parse_request(
    request: Request, settings: Settings, limit_for: Callable[[str | None], int]
) -> ChatKitReq:
    """The body as a ChatKit request, held to its type's limit (`limit_for`), or AppError."""
    try:
        body = await read_body(
            request, lambda head: limit_for(peek_type(head)), body_limit(settings)
        )
    except RequestTooLarge as exc:
        raise AppError(
            f"request body over {exc.limit} bytes", status=413, code="too_large"
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
    if len(body) > (limit := limit_for(parsed.type)):
        raise AppError(f"request body over {limit} bytes", status=413, code="too_large")
    if parsed.metadata and json_bytes(parsed.metadata) > MAX_REQUEST_METADATA_BYTES:
        # Every type carries it, and tools and handlers get it (RequestContext.metadata).
        raise too_large("request metadata", MAX_REQUEST_METADATA_BYTES, "metadata_too_large")
    return parsed
