"""What a request names must exist, belong to the user and be something we handle: checked
before anything runs (404/400/409), since the SDK would report it inside a 200 stream (or a 500).
One function per request type; http/request_types.py says which applies."""

from __future__ import annotations

from chatkit.types import (
    AttachmentsDeleteReq,
    ClientToolCallItem,
    StructuredInputItem,
    ThreadItem,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    UserMessageItem,
    WidgetItem,
)

from ..agent.actions import CheckedAction, InvalidActionError, parse_action
from ..agent.assistant import tool_choices
from ..agent.composer import check_inference_options
from ..context import RequestContext
from ..errors import AppError
from ..settings import Settings
from ..store import PostgresStore
from ..store.thread_status import ensure_open


def message_options(
    request: ThreadsCreateReq | ThreadsAddUserMessageReq, settings: Settings
) -> None:
    """A new message's model must be in MODELS and its tool a choice (400 otherwise)."""
    options = request.params.input.inference_options
    check_inference_options(options, settings, tool_choices(settings))


async def open_item(
    store: PostgresStore, thread_id: str, item_id: str | None, context: RequestContext
) -> ThreadItem | None:
    """The item (None when none is named) of an open thread of the user: 404 for a missing
    thread or item, 409 for a locked or closed thread."""
    ensure_open(await store.load_thread(thread_id, context))
    return await store.load_item(thread_id, item_id, context) if item_id is not None else None


async def attachment_exists(
    request: AttachmentsDeleteReq, store: PostgresStore, context: RequestContext
) -> None:
    """The store deletes a missing attachment silently: 404 here instead."""
    await store.load_attachment(request.params.attachment_id, context)


async def message_targets(
    request: ThreadsCreateReq | ThreadsAddUserMessageReq,
    store: PostgresStore,
    context: RequestContext,
) -> None:
    for attachment_id in request.params.input.attachments:
        await store.load_attachment(attachment_id, context)
    if isinstance(request, ThreadsAddUserMessageReq):
        await open_item(store, request.params.thread_id, None, context)


async def structured_input_target(
    request: ThreadsAddStructuredInputReq, store: PostgresStore, context: RequestContext
) -> None:
    item = await open_item(store, request.params.thread_id, request.params.item_id, context)
    if not isinstance(item, StructuredInputItem) or item.status != "pending":
        raise AppError("that item is not a pending structured input", code="invalid_item")


async def retry_target(
    request: ThreadsRetryAfterItemReq, store: PostgresStore, context: RequestContext
) -> None:
    item = await open_item(store, request.params.thread_id, request.params.item_id, context)
    if not isinstance(item, UserMessageItem):
        raise AppError("a retry names a user message", code="invalid_item")


async def action_target(
    request: ThreadsCustomActionReq | ThreadsSyncCustomActionReq,
    store: PostgresStore,
    context: RequestContext,
) -> CheckedAction:
    """The widget action parsed, once: the turn carries it to the server."""
    item = await open_item(store, request.params.thread_id, request.params.item_id, context)
    if item is not None and not isinstance(item, WidgetItem):
        raise InvalidActionError("actions come from widget items; that item is not a widget")
    sync = isinstance(request, ThreadsSyncCustomActionReq)
    return parse_action(request.params.action, item, sync=sync)


async def client_tool_output_target(
    request: ThreadsAddClientToolOutputReq, store: PostgresStore, context: RequestContext
) -> None:
    """A client tool output needs a pending client tool call as the thread's newest item."""
    thread_id = request.params.thread_id
    await open_item(store, thread_id, None, context)
    newest = await store.load_thread_items(thread_id, None, 1, "desc", context)
    if not newest.data or not (
        isinstance(newest.data[0], ClientToolCallItem) and newest.data[0].status == "pending"
    ):
        raise AppError("the thread has no pending client tool call", code="no_pending_tool_call")
