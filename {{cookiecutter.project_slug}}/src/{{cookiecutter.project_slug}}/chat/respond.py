"""Answer a user message with the agent, streamed as ChatKit events.

`respond` is shaped like the ChatKit guide's: load the thread's recent history, run the agent
(agent.py) on it, and turn the streamed run into ChatKit events with `stream_agent_response`.
Around it sit the fixes a real deployment needs: item ids come from the store (Chat
Completions models all answer with the same placeholder id), model failures become readable
error events (model.py), the model call is cancelled with the client, the thread gets a
title without delaying the answer (titles.py), and every model call's tokens are counted on
the turn's meter (usage.py), which the endpoint writes when the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from agents import ModelSettings, RunConfig, Runner
from chatkit.agents import stream_agent_response
from chatkit.store import Store
from chatkit.types import (
    AssistantMessageItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)

from ..agent.agent import build_agent, tool_choices
from ..agent.composer import picked_model, picked_tool
from ..agent.services import AppContext, Services
from ..context import RequestContext
from ..ops.usage import meter_of
from .history import converter_for, load_history
from .model import ModelGateway, model_error
from .titles import generate_title, title_or_fallback, user_text
from .turn import app_context_item, turn_options

logger = logging.getLogger(__name__)

COUNT_USAGE = ModelSettings(include_usage=True)
"""Chat Completions streams report their usage only when asked (the Agents SDK asks only
api.openai.com); usage.py records it and the daily token budget depends on it."""


async def with_store_ids(
    events: AsyncIterator[ThreadStreamEvent], new_id: Callable[[], str]
) -> AsyncIterator[ThreadStreamEvent]:
    """Give every assistant message an id from the store instead of the model's.

    Chat Completions models answer every message with the placeholder `__fake_id__`, so
    without this each reply would overwrite the previous one.
    """
    ids: dict[str, str] = {}
    async for event in events:
        if isinstance(event, ThreadItemAddedEvent | ThreadItemDoneEvent | ThreadItemReplacedEvent):
            item = event.item
            if isinstance(item, AssistantMessageItem):
                model_id = item.id
                if isinstance(event, ThreadItemAddedEvent) or model_id not in ids:
                    ids[model_id] = new_id()
                item.id = ids[model_id]
                if not isinstance(event, ThreadItemAddedEvent):
                    ids.pop(model_id, None)
        elif isinstance(event, ThreadItemUpdatedEvent | ThreadItemRemovedEvent):
            event.item_id = ids.get(event.item_id, event.item_id)
        yield event


async def respond(
    thread: ThreadMetadata,
    input_user_message: UserMessageItem | None,
    context: RequestContext,
    *,
    store: Store[RequestContext],
    gateway: ModelGateway,
    services: Services | None = None,
) -> AsyncIterator[ThreadStreamEvent]:
    """Stream the model's answer to the thread's newest message as ChatKit events."""
    settings = gateway.settings
    services = services or Services(settings=settings)
    wants_title = settings.generate_titles and thread.title is None
    title_task: asyncio.Task[str] | None = None
    meter = meter_of(context)
    meter.thread_id = thread.id
    try:
        history = await load_history(store, thread, context, settings.history_items)
        options = turn_options(input_user_message, history)
        model = picked_model(options, settings)
        tool = picked_tool(options, tool_choices())
        agent = build_agent(gateway.model(model), settings, tool)
        agent_context = AppContext(
            thread=thread, store=store, request_context=context, services=services
        )
        converter = converter_for(store, context, settings.max_model_input_bytes)
        result = Runner.run_streamed(
            agent,
            [app_context_item(context), *await converter.to_agent_input(history)],
            context=agent_context,
            run_config=RunConfig(
                tracing_disabled=not settings.agents_tracing,
                model_settings=COUNT_USAGE if settings.openai_api == "chat_completions" else None,
            ),
        )

        def new_id() -> str:
            return store.generate_item_id("message", thread, context)

        try:
            async for event in with_store_ids(stream_agent_response(agent_context, result), new_id):
                if wants_title and title_task is None and input_user_message is not None:
                    # Ask for a title once the answer is under way: it runs alongside the
                    # rest of the answer and never competes with its first token.
                    title = generate_title(gateway, user_text(input_user_message), meter)
                    title_task = asyncio.create_task(title)
                yield event
        finally:
            result.cancel()  # stops the model request when the client goes away
            meter.add_responses(model, result.raw_responses)
        if title_task is not None:
            thread.title = await title_or_fallback(title_task, input_user_message)
    except Exception as exc:
        if (error := model_error(exc, settings)) is None:
            raise
        logger.warning("model call failed: %s", type(exc).__name__)
        raise error from exc
    finally:
        if title_task is not None and not title_task.done():
            title_task.cancel()
