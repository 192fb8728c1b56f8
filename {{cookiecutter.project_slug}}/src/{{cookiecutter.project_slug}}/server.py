"""The ChatKit server: the SDK's ChatKitServer wired to our store and `respond`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import AttachmentStore, Store
from chatkit.types import (
    ChatKitReq,
    FeedbackKind,
    ThreadItem,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    is_streaming_req,
)

from .context import RequestContext
from .respond import ModelGateway, respond

logger = logging.getLogger(__name__)


class ChatServer(ChatKitServer[RequestContext]):
    """Answers every user message with the configured OpenAI model."""

    def __init__(
        self,
        store: Store[RequestContext],
        gateway: ModelGateway,
        attachment_store: AttachmentStore[RequestContext] | None = None,
    ) -> None:
        super().__init__(store, attachment_store)
        self.gateway = gateway
        self._saving: set[asyncio.Task[None]] = set()

    async def process_request(
        self, request: ChatKitReq, context: RequestContext
    ) -> StreamingResult | NonStreamingResult:
        """`process` for a request that is already parsed.

        The SDK's `process` builds a new pydantic TypeAdapter for ChatKitReq on every call
        (a full schema build, about a fifth of the server's CPU under load) and parses the
        body again; the endpoint has parsed it once with a module-level adapter already.
        """
        if is_streaming_req(request):
            return StreamingResult(self._process_streaming(request, context))
        return NonStreamingResult(await self._process_non_streaming(request, context))

    def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        return respond(thread, input_user_message, context, store=self.store, gateway=self.gateway)

    async def handle_stream_cancelled(
        self,
        thread: ThreadMetadata,
        pending_items: list[ThreadItem],
        context: RequestContext,
    ) -> None:
        """Keep the partial answer when the client goes away, as the SDK intends.

        The request task is being cancelled (and Starlette cancels it again at every await),
        so the SDK's saving runs in its own task that finishes even if this one is interrupted.
        """
        save = asyncio.create_task(super().handle_stream_cancelled(thread, pending_items, context))
        self._saving.add(save)
        save.add_done_callback(self._saving.discard)
        await asyncio.shield(save)

    async def add_feedback(
        self,
        thread_id: str,
        item_ids: list[str],
        feedback: FeedbackKind,
        context: RequestContext,
    ) -> None:
        """Record 👍/👎 on items. Only the items' owner may: others get NotFoundError (404)."""
        for item_id in item_ids:
            await self.store.load_item(thread_id, item_id, context)
        logger.info(
            "feedback",
            extra={"thread_id": thread_id, "item_ids": item_ids, "feedback": feedback},
        )
