"""Answer a user message with the agent, streamed as ChatKit events: the ChatKit guide's
`respond`, plus store ids, readable model errors, cancellation, titles, usage, notices,
citations and sources, stored images, the partial answer kept on failure, and guardrails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from agents import InputGuardrailTripwireTriggered, ModelSettings, RunConfig, Runner
from chatkit.agents import stream_agent_response
from chatkit.store import Store
from chatkit.types import (
    AssistantMessageItem,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)

from ..agent.assistant import build_agent, tool_choices
from ..agent.composer import picked_model, picked_tool
from ..agent.guardrails import TRIPPED, tripwire_error
from ..agent.services import AppContext, Services
from ..agent.sources import attach, safe_links
from ..agent.tool_errors import tool_error_formatter
from ..compat.chatkit_agents import annotation_safe
from ..context import RequestContext
from ..ops.usage import tokens_today
from ..store.image_store import GeneratedImageStore
from ..store.postgres import PostgresStore
from .history import converter_for, load_history
from .model import ModelGateway, model_error
from .notices import attachments_notice, budget_notice
from .partial import PartialAnswers
from .response_chain import chained_turn, remember
from .run_input import app_context_item, turn_options
from .stream_chain import stream_converter
from .titles import generate_title, set_title_unless_named, title_or_fallback, user_text
from .turn import Turn

logger = logging.getLogger(__name__)

# Chat Completions streams report usage only when asked (the Agents SDK asks only OpenAI's).
COUNT_USAGE = ModelSettings(include_usage=True)


async def with_store_ids(
    events: AsyncIterator[ThreadStreamEvent], new_id: Callable[[], str]
) -> AsyncIterator[ThreadStreamEvent]:
    """Assistant messages with ids from the store: Chat Completions models give every message
    the placeholder `__fake_id__`, so each reply would overwrite the previous one."""
    ids: dict[str, str] = {}
    issued: dict[str, list[str]] = {}
    async for event in events:
        if isinstance(event, ThreadItemAddedEvent | ThreadItemDoneEvent | ThreadItemReplacedEvent):
            item = event.item
            if isinstance(item, AssistantMessageItem):
                model_id = item.id
                if isinstance(event, ThreadItemAddedEvent) or model_id not in ids:
                    ids[model_id] = new_id()
                    issued.setdefault(model_id, []).append(ids[model_id])
                item.id = ids[model_id]
                if not isinstance(event, ThreadItemAddedEvent):
                    ids.pop(model_id, None)
        elif isinstance(event, ThreadItemRemovedEvent) and event.item_id in issued:
            # A guardrail removes the turn's messages by the model's id, done ones too (and
            # with Chat Completions one id names them all): remove each by its store id.
            ids.pop(event.item_id, None)
            for store_id in issued.pop(event.item_id):
                yield ThreadItemRemovedEvent(item_id=store_id)
            continue
        elif isinstance(event, ThreadItemUpdatedEvent | ThreadItemRemovedEvent):
            event.item_id = ids.get(event.item_id, event.item_id)
        yield event


async def respond(
    thread: ThreadMetadata,
    input_user_message: UserMessageItem | None,
    context: RequestContext,
    turn: Turn,
    *,
    store: Store[RequestContext],
    gateway: ModelGateway,
    images: GeneratedImageStore | None,
    services: Services,
) -> AsyncIterator[ThreadStreamEvent]:
    """Stream the model's answer to the thread as ChatKit events: to `input_user_message`, or
    without one (None) to the thread as it is, e.g. after an action's hidden context."""
    settings = gateway.settings
    wants_title = settings.generate_titles and thread.title is None
    title_task: asyncio.Task[str] | None = None
    meter = turn.meter
    meter.thread_id = thread.id
    partial = PartialAnswers()
    history: list[ThreadItem] = []
    last_answer: str | None = None
    try:
        history = await load_history(store, thread, context, settings.history_items)
        options = turn_options(input_user_message, history)
        model = picked_model(options, settings)
        tool = picked_tool(options, tool_choices(settings))
        agent = build_agent(gateway.model(model), settings, tool)
        agent_context = AppContext(
            thread=thread, store=store, request_context=context, services=services, cited=turn.cited
        )
        converter = converter_for(
            store, context, settings.max_model_input_bytes, images, settings.max_message_chars
        )
        previous, unsent = chained_turn(thread, history, settings.openai_api == "responses")
        agent_input = await converter.to_agent_input(unsent)
        if input_user_message is not None and converter.withheld:
            sent = len(input_user_message.attachments)
            budget = settings.max_model_input_bytes
            yield attachments_notice(converter.withheld, sent, budget, context.locale)
        result = Runner.run_streamed(
            agent,
            [app_context_item(context), *agent_input],
            context=agent_context,
            previous_response_id=previous,
            run_config=RunConfig(
                tracing_disabled=not settings.agents_tracing,
                tool_error_formatter=tool_error_formatter,
                model_settings=COUNT_USAGE if settings.openai_api == "chat_completions" else None,
            ),
        )

        def new_id() -> str:
            return store.generate_item_id("message", thread, context)

        stream = stream_agent_response(
            agent_context,
            annotation_safe(result),  # citations crash the SDK otherwise (see compat)
            converter=stream_converter(settings, images, thread, context),
        )
        try:
            async for streamed in with_store_ids(stream, new_id):
                if (event := safe_links(streamed)) is None:
                    continue
                partial.see(event)
                if isinstance(event, ThreadItemDoneEvent) and isinstance(
                    event.item, AssistantMessageItem
                ):
                    last_answer = event.item.id
                    if turn.cited:
                        attach(event.item, turn.cited)  # sources the turn's tools cited
                if wants_title and title_task is None and input_user_message is not None:
                    # Ask for a title once the answer is under way: it runs alongside the
                    # rest of the answer and never competes with its first token.
                    title = generate_title(gateway, user_text(input_user_message), meter)
                    title_task = asyncio.create_task(title)
                yield event
        finally:
            result.cancel()  # stops the model request when the client goes away
            meter.add_responses(model, result.raw_responses)
        remember(thread, result.last_response_id, last_answer)
        if title_task is not None:
            named = await title_or_fallback(title_task, input_user_message)
            await set_title_unless_named(store, thread, named, context)
        if meter.daily_budget and isinstance(store, PostgresStore):
            spent = await tokens_today(store, meter, context.user.id)
            if (notice := budget_notice(meter, spent, context.locale)) is not None:
                yield notice
    except TRIPPED as exc:
        logger.info("guardrail tripped: %s", exc.guardrail_result.guardrail.get_name())
        refused = newest_user_message(history)
        if isinstance(exc, InputGuardrailTripwireTriggered) and refused is not None:
            # The refused message is not kept: a later turn would send it to the model.
            yield ThreadItemRemovedEvent(item_id=refused.id)
        raise tripwire_error(exc, context.locale) from exc
    except Exception as exc:
        for done in partial.done_events():
            yield done  # the text the user already saw is stored before the error
        if (error := model_error(exc, settings, context.locale)) is None:
            raise
        logger.warning("model call failed: %s", type(exc).__name__)
        raise error from exc
    finally:
        if title_task is not None and not title_task.done():
            title_task.cancel()


def newest_user_message(history: list[ThreadItem]) -> UserMessageItem | None:
    return next((i for i in reversed(history) if isinstance(i, UserMessageItem)), None)
