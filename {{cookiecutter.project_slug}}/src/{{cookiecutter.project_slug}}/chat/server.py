"""The ChatKit server: the SDK's ChatKitServer wired to our store, agent, actions and dictation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from chatkit.actions import Action
from chatkit.server import ChatKitServer
from chatkit.store import AttachmentStore, StoreItemType
from chatkit.types import (
    AudioInput,
    FeedbackKind,
    SyncCustomActionResponse,
    ThreadItem,
    ThreadMetadata,
    ThreadStreamEvent,
    TranscriptionResult,
    UserMessageItem,
    WidgetItem,
)
from pydantic import BaseModel

from ..agent.actions import ActionCall, parse_action
from ..agent.services import Services
from ..compat.chatkit_server import process_parsed, quiet_deleted_threads
from ..context import RequestContext
from ..ops.limits import LeaseLimits, admit
from ..ops.rates import Bucket
from ..ops.usage import record_transcription
from ..store import PostgresStore
from ..store.image_store import GeneratedImageStore

if TYPE_CHECKING:
    from ..ops.metrics import Metrics
from .dictation import transcribe
from .model import ModelGateway
from .respond import respond
from .turn import Turn, TurnContext, turn_of


class ChatServer(ChatKitServer[RequestContext]):
    """Answers messages with the agent, runs widget actions, transcribes, keeps feedback."""

    store: PostgresStore

    def __init__(
        self,
        store: PostgresStore,
        gateway: ModelGateway,
        attachment_store: AttachmentStore[RequestContext] | None,
        images: GeneratedImageStore | None,
        services: Services,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(store, attachment_store)
        self.gateway = gateway
        self.images = images
        self.services = services
        self.metrics = metrics  # METRICS=true: each turn timed and its tokens counted
        self._saving: set[asyncio.Task[None]] = set()
        quiet_deleted_threads()

    async def process_turn(
        self, context: TurnContext, limits: LeaseLimits | None, bucket: Bucket | None
    ) -> None:
        """`process` for the checked turn: sets `turn.lease` (or spends `bucket`), `turn.result`."""
        turn = context.turn
        assert turn is not None and turn.request is not None  # the endpoint's
        turn.lease = await admit(limits, bucket, self.store, context.user.id, turn.meter)
        turn.result = await process_parsed(self, turn.request, context)

    def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        turn = turn_of(context) or Turn()  # the SDK's own `process` (tests) makes no turn
        events = respond(
            thread,
            input_user_message,
            context,
            turn,
            store=self.store,
            gateway=self.gateway,
            images=self.images,
            services=self.services,
        )
        if self.metrics is not None:
            events = self.metrics.observe_turn(events, context, turn.meter)
        return events

    def action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: RequestContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Run the action's handler (agent/actions.py), as parsed by the endpoint's check."""
        turn = turn_of(context)
        handler, payload = turn.action if turn and turn.action else parse_action(action, sender)
        return handler.handle(self._action_call(thread, payload, sender, context))

    async def sync_action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: RequestContext,
    ) -> SyncCustomActionResponse:
        """Run the action's `sync` function; store the item it updated (the SDK does not)."""
        turn = turn_of(context)
        checked = turn.action if turn and turn.action else parse_action(action, sender, sync=True)
        handler, payload = checked
        assert handler.sync is not None  # parse_action refuses actions without one
        updated = await handler.sync(self._action_call(thread, payload, sender, context))
        if updated is not None:
            await self.store.save_item(thread.id, updated, context)
        return SyncCustomActionResponse(updated_item=updated)

    def _action_call(
        self,
        thread: ThreadMetadata,
        payload: BaseModel,
        sender: WidgetItem | None,
        context: RequestContext,
    ) -> ActionCall[Any]:
        def new_id(kind: StoreItemType) -> str:
            return self.store.generate_item_id(kind, thread, context)

        def run_agent() -> AsyncIterator[ThreadStreamEvent]:
            return self.respond(thread, None, context)

        return ActionCall(thread, payload, sender, context, new_id=new_id, run_agent=run_agent)

    async def transcribe(
        self, audio_input: AudioInput, context: RequestContext
    ) -> TranscriptionResult:
        """Dictation: the text spoken in the recording (dictation.py), metered in `usage`."""
        result, call = await transcribe(self.gateway, audio_input)
        await record_transcription(self.store, context.user.id, call)
        return result

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
        """Keep the partial answer when the client goes away: the SDK's saving runs in a task of its
        own, since Starlette cancels this one again at every await."""
        save = asyncio.create_task(super().handle_stream_cancelled(thread, pending_items, context))
        self._saving.add(save)
        save.add_done_callback(self._saving.discard)
        await asyncio.shield(save)
