"""What a streaming request names must exist, belong to the user and be something we handle,
checked before the stream starts (404/400): the SDK would report it inside a 200 stream."""

from __future__ import annotations

from chatkit.types import (
    AttachmentsDeleteReq,
    ChatKitReq,
    ClientToolCallItem,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    WidgetItem,
    is_streaming_req,
)

from ..agent.actions import InvalidActionError, parse_action
from ..agent.agent import tool_choices
from ..agent.composer import check_inference_options
from ..context import RequestContext
from ..errors import AppError
from ..settings import Settings
from ..store import PostgresStore


def check_options(request: ChatKitReq, settings: Settings) -> None:
    """A new message's model must be in MODELS and its tool a choice (400 otherwise)."""
    if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
        check_inference_options(request.params.input.inference_options, settings, tool_choices())


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
