"""What a streaming request (or a sync action) names must exist, belong to the user and be
something we handle, checked before anything runs (404/400): the SDK would report it inside a
200 stream (or fail with a 500)."""

from __future__ import annotations

from typing import Any

from chatkit.actions import Action
from chatkit.types import (
    AttachmentsDeleteReq,
    ChatKitReq,
    ClientToolCallItem,
    ThreadItem,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    WidgetItem,
    is_streaming_req,
)

from ..agent.actions import ACTIONS, InvalidActionError, parse_action
from ..context import RequestContext
from ..errors import AppError
from ..store import PostgresStore


async def check_targets(request: ChatKitReq, store: PostgresStore, context: RequestContext) -> None:
    """Load what a streaming request names (thread, item, attachments): a missing one is a 404.

    The SDK only fails once a stream is read, after the 200 has gone out; checking first
    keeps "not found" a proper 404 for streaming requests too. Non-streaming requests need
    no check (the SDK raises NotFoundError before it answers), except `attachments.delete`,
    which the store treats as a no-op for an id it does not find, and sync actions.
    """
    if isinstance(request, AttachmentsDeleteReq):
        await store.load_attachment(request.params.attachment_id, context)
    if isinstance(request, ThreadsSyncCustomActionReq):
        await check_sync_action(request, store, context)
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
        check_action(request.params.action, item)
    elif isinstance(request, ThreadsAddClientToolOutputReq):
        await check_pending_client_tool_call(store, thread_id, context)


async def check_sync_action(
    request: ThreadsSyncCustomActionReq, store: PostgresStore, context: RequestContext
) -> None:
    """A sync action's thread and widget are the user's (404) and it is one we run (400)."""
    params = request.params
    await store.load_thread(params.thread_id, context)
    item_id = params.item_id
    item = await store.load_item(params.thread_id, item_id, context) if item_id else None
    check_action(params.action, item, sync=True)


def check_action(action: Action[str, Any], item: ThreadItem | None, *, sync: bool = False) -> None:
    """The action is one we handle, sent by a widget offering it, with a valid payload."""
    if item is not None and not isinstance(item, WidgetItem):
        raise InvalidActionError("actions come from widget items; that item is not a widget")
    parse_action(action, item, sync=sync)


def runs_model(request: ChatKitReq) -> bool:
    """Whether the request may call the model: every streaming request but the actions whose
    handler does not (the limits count the ones that do like messages)."""
    if isinstance(request, ThreadsCustomActionReq):
        handler = ACTIONS.get(request.params.action.type)
        return handler is not None and handler.runs_model
    return is_streaming_req(request)


async def check_pending_client_tool_call(
    store: PostgresStore, thread_id: str, context: RequestContext
) -> None:
    """A client tool output needs a pending client tool call as the thread's newest item."""
    newest = await store.load_thread_items(thread_id, None, 1, "desc", context)
    if not newest.data or not (
        isinstance(newest.data[0], ClientToolCallItem) and newest.data[0].status == "pending"
    ):
        raise AppError("the thread has no pending client tool call", code="no_pending_tool_call")
