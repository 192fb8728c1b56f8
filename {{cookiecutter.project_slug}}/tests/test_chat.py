"""A real conversation over HTTP: streaming, history, ids and titles, in both OpenAI APIs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text
from tests.support.app import AppServer
from tests.support.chatkit import done_items, streamed_requests
from tests.support.fake_openai import FakeModel, last_user_text

API_MODES = ["responses", "chat_completions"]


def text_deltas(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["update"]["delta"]
        for e in events
        if e["type"] == "thread.item.updated"
        and e["update"]["type"] == "assistant_message.content_part.text_delta"
    ]


def model_messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of the conversation the model was sent, for either API (without the
    app-context item each turn starts with: tests/http/test_app_context.py checks that)."""
    raw = body.get("input") or body.get("messages") or []
    out = []
    for message in raw:
        content = message.get("content")
        text = (
            content
            if isinstance(content, str)
            else "".join(p.get("text", "") for p in content or [])
        )
        out.append((message.get("role"), text))
    return [
        m for m in out if m[0] in ("user", "assistant") and not m[1].startswith("<APP_CONTEXT>")
    ]


@pytest.mark.parametrize("api", API_MODES)
async def test_two_turn_chat(
    api: str,
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    server = app_factory(openai_api=api)
    fake_model.reply = lambda body: f"echo: {last_user_text(body)}"
    client = client_for(server=server)

    first = await client.send("hello there")
    thread = next(e["thread"] for e in first if e["type"] == "thread.created")
    assert len(text_deltas(first)) > 1, "the answer streams in several deltas"
    (answer1,) = done_items(first, "assistant_message")
    assert assistant_text(answer1) == "echo: hello there"

    second = await client.send("and again", thread["id"])
    (answer2,) = done_items(second, "assistant_message")
    assert assistant_text(answer2) == "echo: and again"

    calls = streamed_requests(fake_model)
    assert [c["model"] for c in calls] == ["test-model", "test-model"]
    assert model_messages(calls[1]) == [
        ("user", "hello there"),
        ("assistant", "echo: hello there"),
        ("user", "and again"),
    ]

    items = (await client.request("items.list", {"thread_id": thread["id"], "order": "asc"}))[
        "data"
    ]
    assert [i["type"] for i in items] == [
        "user_message",
        "assistant_message",
        "user_message",
        "assistant_message",
    ]
    assert len({i["id"] for i in items}) == 4, "every item keeps its own id"
    assert "__fake_id__" not in {i["id"] for i in items}
    assert [assistant_text(i) for i in items if i["type"] == "assistant_message"] == [
        "echo: hello there",
        "echo: and again",
    ]
    assert answer1["id"] == items[1]["id"], "the streamed id is the stored id"


async def test_thread_gets_a_title_after_the_first_turn(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for()
    events = await client.send("Plan a trip to Lisbon in May")
    updated = [e for e in events if e["type"] == "thread.updated"]
    assert updated and updated[-1]["thread"]["title"] == "A short title"
    thread_id = updated[-1]["thread"]["id"]
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    assert thread["title"] == "A short title"
    await client.send("second message", thread_id)
    assert sum(1 for body in fake_model.requests if not body.get("stream")) == 1


async def test_history_is_the_newest_items_in_order(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    server = app_factory(history_items=4)
    client = client_for(server=server)
    fake_model.reply = lambda body: f"re {last_user_text(body)}"
    events = await client.send("m1")
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    for text in ("m2", "m3"):
        await client.send(text, thread_id)
    sent = model_messages(streamed_requests(fake_model)[-1])
    assert sent == [("assistant", "re m1"), ("user", "m2"), ("assistant", "re m2"), ("user", "m3")]
