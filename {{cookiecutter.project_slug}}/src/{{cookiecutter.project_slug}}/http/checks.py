"""What a request names must exist, belong to the user and be something we handle: checked
before anything runs (404/400), since the SDK would report it inside a 200 stream (or a 500)."""

from __future__ import annotations

from chatkit.types import (
    AttachmentsDeleteReq,
    ChatKitReq,
    ClientToolCallItem,
    StructuredInputItem,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    UserMessageItem,
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
from ..store.thread_status import ensure_open

ITEM_REQUESTS = (
    ThreadsAddStructuredInputReq
    | ThreadsRetryAfterItemReq
    | ThreadsCustomActionReq
    | ThreadsSyncCustomActionReq
)


def check_options(request: ChatKitReq, settings: Settings) -> None:
    """A new message's model must be in MODELS and its tool a choice (400 otherwise)."""
    if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
        options = request.params.input.inference_options
        check_inference_options(options, settings, tool_choices(settings))


async def check_targets(request: ChatKitReq, store: PostgresStore, context: RequestContext) -> None:
    """Load what the request names (a missing one is NotFoundError: 404) and refuse what the
    SDK would fail on (400) or a locked or closed thread refuses (409); a widget action is
    parsed here, once, into the context."""
    if isinstance(request, AttachmentsDeleteReq):  # the store deletes a missing one silently
        await store.load_attachment(request.params.attachment_id, context)
    actions = ThreadsCustomActionReq | ThreadsSyncCustomActionReq
    if not is_streaming_req(request) and not isinstance(request, actions):
        return
    if isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
        for attachment_id in request.params.input.attachments:
            await store.load_attachment(attachment_id, context)
    thread_id: str | None = getattr(getattr(request, "params", None), "thread_id", None)
    if thread_id is None:
        return
    ensure_open(await store.load_thread(thread_id, context))
    item_id = request.params.item_id if isinstance(request, ITEM_REQUESTS) else None
    item = await store.load_item(thread_id, item_id, context) if item_id is not None else None
    if isinstance(request, actions):
        if item is not None and not isinstance(item, WidgetItem):
            raise InvalidActionError("actions come from widget items; that item is not a widget")
        sync = isinstance(request, ThreadsSyncCustomActionReq)
        context.checked_action = parse_action(request.params.action, item, sync=sync)
    elif isinstance(request, ThreadsAddStructuredInputReq):
        if not isinstance(item, StructuredInputItem) or item.status != "pending":
            raise AppError("that item is not a pending structured input", code="invalid_item")
    elif isinstance(request, ThreadsRetryAfterItemReq):
        if not isinstance(item, UserMessageItem):
            raise AppError("a retry names a user message", code="invalid_item")
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
