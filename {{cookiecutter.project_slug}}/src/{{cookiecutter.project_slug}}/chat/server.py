"""The ChatKit server: the SDK's ChatKitServer wired to our store, agent, actions and dictation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from chatkit.actions import Action
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import AttachmentStore
from chatkit.types import (
    AudioInput,
    ChatKitReq,
    FeedbackKind,
    ThreadItem,
    ThreadMetadata,
    ThreadStreamEvent,
    TranscriptionResult,
    UserMessageItem,
    WidgetItem,
)

from ..agent.actions import ActionCall, parse_action
from ..agent.services import Services
from ..compat.chatkit_server import process_parsed
from ..context import RequestContext
from ..store.postgres import PostgresStore
from .dictation import transcribe
from .model import ModelGateway
from .respond import respond


class ChatServer(ChatKitServer[RequestContext]):
    """Answers messages with the agent, runs widget actions, transcribes, keeps feedback."""

    store: PostgresStore

    def __init__(
        self,
        store: PostgresStore,
        gateway: ModelGateway,
        attachment_store: AttachmentStore[RequestContext] | None = None,
        services: Services | None = None,
    ) -> None:
        super().__init__(store, attachment_store)
        self.gateway = gateway
        self.services = services or Services(settings=gateway.settings)
        self._saving: set[asyncio.Task[None]] = set()

    async def process_request(
        self, request: ChatKitReq, context: RequestContext
    ) -> StreamingResult | NonStreamingResult:
        """`process` for a request the endpoint has already parsed (see compat)."""
        return await process_parsed(self, request, context)

    def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        gateway = self.gateway
        events = respond(
            thread,
            input_user_message,
            context,
            store=self.store,
            gateway=gateway,
            services=self.services,
        )
        if gateway.metrics is not None:  # METRICS=true: time the turn, count its tokens
            events = gateway.metrics.observe_turn(events, context)
        return events

    def action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Run the handler for the action's type (actions.py; the endpoint checked it first)."""
        handler, payload = parse_action(action, sender)
        return handler.handle(ActionCall(thread, payload, sender, context))

    async def transcribe(
        self, audio_input: AudioInput, context: RequestContext
    ) -> TranscriptionResult:
        """Dictation: the text spoken in the recording (dictation.py)."""
        return await transcribe(self.gateway, audio_input)

    async def add_feedback(
        self,
        thread_id: str,
        item_ids: list[str],
        feedback: FeedbackKind,
        context: RequestContext,
    ) -> None:
        """Keep 👍/👎 on items (table `feedback`); another user's items are NotFoundError (404)."""
        await self.store.save_feedback(thread_id, item_ids, feedback, context)

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
