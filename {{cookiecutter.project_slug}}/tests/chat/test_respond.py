"""Unit tests of the pieces around the model call (no network, no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import openai
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    InferenceOptions,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTextContent,
)

from {{ cookiecutter.project_slug }}.chat.history import HistoryConverter
from {{ cookiecutter.project_slug }}.chat.model import model_error
from {{ cookiecutter.project_slug }}.chat.respond import with_store_ids
from {{ cookiecutter.project_slug }}.chat.titles import clean_title, fallback_title
from {{ cookiecutter.project_slug }}.compat.openai_client import send_as_is
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support.app import TEST_AUTH_SECRET

FAKE_ID = "__fake_id__"
NOW = datetime(2026, 1, 1)


def assistant(item_id: str, text: str = "") -> AssistantMessageItem:
    content = [AssistantMessageContent(text=text)] if text else []
    return AssistantMessageItem(id=item_id, thread_id="thr", created_at=NOW, content=content)


async def replay(events: list[ThreadStreamEvent]) -> AsyncIterator[ThreadStreamEvent]:
    for event in events:
        yield event


async def test_every_assistant_message_gets_its_own_store_id() -> None:
    delta = AssistantMessageContentPartTextDelta(content_index=0, delta="a")
    events: list[ThreadStreamEvent] = []
    for text in ("one", "two"):  # two replies, both with the placeholder id
        events += [
            ThreadItemAddedEvent(item=assistant(FAKE_ID)),
            ThreadItemUpdatedEvent(item_id=FAKE_ID, update=delta),
            ThreadItemDoneEvent(item=assistant(FAKE_ID, text)),
        ]
    ids = iter(["msg_1", "msg_2"])
    out = [e async for e in with_store_ids(replay(events), lambda: next(ids))]
    seen = [e.item.id if hasattr(e, "item") else e.item_id for e in out]  # type: ignore[union-attr]
    assert seen == ["msg_1", "msg_1", "msg_1", "msg_2", "msg_2", "msg_2"]


async def test_removals_after_done_use_every_store_id_given() -> None:
    """A guardrail removes the turn's messages by the model's ids, also after they were done
    (and stored under store ids); with Chat Completions one placeholder id names them all."""
    events: list[ThreadStreamEvent] = []
    for model_id in (FAKE_ID, FAKE_ID, "msg_model"):
        events += [
            ThreadItemAddedEvent(item=assistant(model_id)),
            ThreadItemDoneEvent(item=assistant(model_id, "text")),
        ]
    events += [ThreadItemRemovedEvent(item_id=FAKE_ID), ThreadItemRemovedEvent(item_id="msg_model")]
    ids = iter(["msg_1", "msg_2", "msg_3"])
    out = [e async for e in with_store_ids(replay(events), lambda: next(ids))]
    removed = [e.item_id for e in out if isinstance(e, ThreadItemRemovedEvent)]
    assert removed == ["msg_1", "msg_2", "msg_3"]


async def test_history_is_plain_strings_unless_the_message_is_richer() -> None:
    converter = HistoryConverter()
    user = UserMessageItem(
        id="u",
        thread_id="thr",
        created_at=NOW,
        content=[UserMessageTextContent(text="hello")],
        inference_options=InferenceOptions(),
    )
    quoted = user.model_copy(update={"quoted_text": "that part"})
    assert await converter.to_agent_input([user, assistant("a", "hi there")]) == [
        {"type": "message", "role": "user", "content": "hello"},
        {"type": "message", "role": "assistant", "content": "hi there"},
    ]
    rich = await converter.to_agent_input([quoted])
    assert rich[0]["content"] == [{"type": "input_text", "text": "hello"}]  # type: ignore[index]
    assert "that part" in str(rich[1])


def test_conversation_goes_in_extra_body_untouched() -> None:
    messages = [{"role": "user", "content": "hi"}]
    moved = send_as_is({"model": "m", "messages": messages, "extra_body": {"x": 1}}, "messages", [])
    assert moved == {"model": "m", "messages": [], "extra_body": {"x": 1, "messages": messages}}
    assert send_as_is({"input": "plain text"}, "input", None) == {"input": "plain text"}


def test_titles_are_cleaned_or_made_from_the_message() -> None:
    assert clean_title('Title: "Trip to Lisbon."') == "Trip to Lisbon"
    assert fallback_title("  plan   a trip ") == "plan a trip"
    long = fallback_title("word " * 40)
    assert len(long) <= 80 and long.endswith("…")
    assert fallback_title("") == "New conversation"


def test_model_errors_say_what_happened() -> None:
    settings = Settings(_env_file=None, auth_secret=TEST_AUTH_SECRET, openai_timeout=7)  # type: ignore[call-arg]
    request = httpx.Request("POST", "http://model/v1/responses")
    limited = openai.RateLimitError(
        "slow down",
        response=httpx.Response(429, headers={"retry-after": "3"}, request=request),
        body=None,
    )
    timeout = openai.APITimeoutError(request=request)
    assert (error := model_error(limited, settings)) is not None
    assert "Try again in 3 s" in error.message and error.allow_retry
    assert (error := model_error(timeout, settings)) is not None
    assert "within 7 seconds" in error.message
    assert model_error(KeyError("not a model failure"), settings) is None
