"""What goes wrong in a turn, end to end over HTTP in both APIs: a model failure mid-answer
keeps the text already shown, guardrails refuse with their own message and no retry, a thread
item the model input cannot hold is skipped rather than failing every later turn, and the
automatic title never overwrites one given during the turn."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
import pytest
from agents import RunContextWrapper, function_tool
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    HiddenContextItem,
    WidgetItem,
)

from {{ cookiecutter.project_slug }}.agent import assistant as agent_module
from {{ cookiecutter.project_slug }}.agent.guardrails import no_secrets, no_secrets_in_answers
from {{ cookiecutter.project_slug }}.chat.history import HistoryConverter
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text, user_input
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support.app import AppServer, wait_until
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel, Fault

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]
SECRET = "sk-" + "a1B2c3D4e5" * 3


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param)


def errors(events: list[JSON]) -> list[JSON]:
    return [e for e in events if e["type"] == "error"]


def thread_id_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


async def stored(client: ChatKitClient, thread_id: str) -> list[JSON]:
    page = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    return list(page["data"])


# --- a model failure mid-answer ---------------------------------------------------------------


async def test_a_failure_mid_answer_keeps_the_text_already_shown(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for(server=server)
    fake_model.delay = 0.05  # each token reaches the client before the connection drops
    fake_model.faults.append(Fault(reset_after_tokens=3))
    events = await client.send("tell me something long")
    kinds = [e["type"] for e in events]
    (error,) = errors(events)
    assert error["allow_retry"] is True
    done = [
        (index, e["item"])
        for index, e in enumerate(events)
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    ]
    seen = "".join(
        e["update"].get("delta", "") for e in events if e["type"] == "thread.item.updated"
    )
    # A TCP reset may drop bytes in flight: the client sees a prefix of what was sent.
    assert seen.startswith("tok0") and "tok0 tok1 tok2 ".startswith(seen)
    assert [assistant_text(item) for _index, item in done] == [seen]
    assert done[0][0] < kinds.index("error"), "stored before the error"

    thread_id = thread_id_of(events)
    items = await stored(client, thread_id)
    assert [i["type"] for i in items] == ["user_message", "assistant_message"]
    assert assistant_text(items[1]) == seen

    # A retry replaces the partial answer with a whole one.
    retried = client.stream(
        "threads.retry_after_item", {"thread_id": thread_id, "item_id": items[0]["id"]}
    )
    assert not errors([e async for e in retried])
    items = await stored(client, thread_id)
    assert [assistant_text(i) for i in items[1:]] == ["tok0 tok1 tok2 tok3 tok4 "]


async def test_a_failure_before_any_text_stores_no_empty_answer(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for(server=server)
    fake_model.faults.append(Fault(reset_after_tokens=0))
    events = await client.send("hello")
    assert errors(events)
    assert [i["type"] for i in await stored(client, thread_id_of(events))] == ["user_message"]


# --- guardrails -------------------------------------------------------------------------------


async def test_an_input_guardrail_refuses_before_the_model_is_asked(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "GUARDRAILS", [no_secrets])
    client = client_for(server=server)
    events = await client.send(f"my key is {SECRET}, is it valid?")
    (error,) = errors(events)
    assert "secret key" in error["message"] and "model call failed" not in error["message"]
    assert error["allow_retry"] is False
    assert not [b for b in fake_model.requests if b.get("stream")], "the model never saw it"
    thread_id = thread_id_of(events)
    assert await stored(client, thread_id) == [], "the refused message is not kept"

    again = await client.send("a harmless question", thread_id)
    assert not errors(again)
    body = next(b for b in fake_model.requests if b.get("stream"))
    assert SECRET not in json.dumps(body), "no later turn sends it to the model"


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(
            {
                "content": [{"type": "input_text", "text": "is this one valid?"}],
                "quoted_text": f"the key {SECRET}",
            },
            id="in-quoted-text",
        ),
        pytest.param(
            {
                "content": [
                    {"type": "input_text", "text": f"my key is {SECRET}, ask "},
                    {
                        "type": "input_tag",
                        "id": "thr_nobody",
                        "text": "Ops notes",
                        "data": {"type": "thread"},
                        "interactive": True,
                    },
                ]
            },
            id="typed-beside-a-tag",
        ),
    ],
)
async def test_the_input_guardrail_checks_quoted_text_and_tagged_messages(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
    message: JSON,
) -> None:
    """The SDK sends quoted text and @-mention context as items after the typed text: the
    guardrail reads every user item of the turn, not only the newest."""
    monkeypatch.setattr(agent_module, "GUARDRAILS", [no_secrets])
    client = client_for(server=server)
    events = await client.send("", message={**message, "attachments": [], "inference_options": {}})
    (error,) = errors(events)
    assert "secret key" in error["message"]
    assert not [b for b in fake_model.requests if b.get("stream")], "the model never saw it"


async def test_an_output_guardrail_withholds_the_answer(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer was streamed before the check: it is removed from the client and the store
    under the id they know it by (with_store_ids maps removals after Done too: test_respond)."""
    monkeypatch.setattr(agent_module, "GUARDRAILS", [no_secrets_in_answers])
    client = client_for(server=server)
    fake_model.reply = lambda body: f"Here is a key: {SECRET}"
    events = await client.send("give me a key")
    (error,) = errors(events)
    assert error["message"].startswith("The answer contained what looks like a secret key")
    assert error["allow_retry"] is False
    answers = {
        e["item"]["id"]
        for e in events
        if e["type"] in ("thread.item.added", "thread.item.done")
        and e["item"]["type"] == "assistant_message"
    }
    removed = {e["item_id"] for e in events if e["type"] == "thread.item.removed"}
    assert answers and answers <= removed
    items = await stored(client, thread_id_of(events))
    assert [i["type"] for i in items] == ["user_message"]


async def test_guardrails_are_off_by_default(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    assert agent_module.GUARDRAILS == []
    events = await client_for(server=server).send(f"my key is {SECRET}")
    assert not errors(events)


# --- history the model input cannot hold ------------------------------------------------------


async def test_non_string_hidden_context_reaches_the_model_as_json(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    user = f"user-{uuid.uuid4().hex}"
    client = client_for(user, server=server)
    thread_id = thread_id_of(await client.send("hello"))
    context = make_context(user)
    thread = await store.load_thread(thread_id, context)
    hidden = HiddenContextItem(
        id=f"hc_{uuid.uuid4().hex}",
        thread_id=thread_id,
        created_at=datetime.now(),
        content={"plan": "pro", "seats": 3},
    )
    await store.add_thread_item(thread.id, hidden, context)
    for text in ("first turn after it", "and the next"):
        fake_model.reset()
        assert not errors(await client.send(text, thread_id))
        body = json.dumps(next(b for b in fake_model.requests if b.get("stream")))
        assert '\\"plan\\": \\"pro\\"' in body


async def test_an_unknown_item_type_is_skipped_with_a_warning(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An item of a type this SDK version does not know (written by a newer one) is left out
    of the model input and of the thread's items; the thread keeps working."""
    client = client_for(server=server)
    thread_id = thread_id_of(await client.send("hello"))
    future = {
        "id": "fut_1",
        "thread_id": thread_id,
        "type": "future_item",
        "created_at": "2030-01-01T00:00:00",
    }
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute(
            "INSERT INTO thread_items (thread_id, id, created_at, payload) "
            "VALUES (%s, 'fut_1', now(), %s::jsonb)",
            (thread_id, json.dumps(future)),
        )
    with caplog.at_level(logging.WARNING):
        for text in ("still there?", "and now?"):
            events = await client.send(text, thread_id)
            assert not errors(events), errors(events)
    assert "future_item" not in json.dumps(await stored(client, thread_id))
    assert any("unreadable item" in r.getMessage() for r in caplog.records)


async def test_an_item_the_converter_fails_on_is_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Strict(HistoryConverter):
        async def widget_to_input(self, item: WidgetItem) -> Any:
            raise NotImplementedError("no widgets here")

    now = datetime.now()
    items: list[Any] = [
        AssistantMessageItem(
            id=f"a{n}",
            thread_id="t",
            created_at=now,
            content=[AssistantMessageContent(text=f"m{n}")],
        )
        for n in range(2)
    ]
    widget = WidgetItem.model_validate(
        {"id": "w", "thread_id": "t", "created_at": now, "widget": {"type": "Card", "children": []}}
    )
    with caplog.at_level(logging.WARNING):
        converted = await Strict().to_agent_input([items[0], widget, items[1]])
    assert [item["content"] for item in converted] == ["m0", "m1"]  # type: ignore[typeddict-item]
    assert any("left out widget item w" in r.getMessage() for r in caplog.records)


# --- titles -----------------------------------------------------------------------------------


@function_tool
async def name_the_thread(ctx: RunContextWrapper[Any], title: str) -> str:
    """Give the conversation a title.

    Args:
        title: The new title.
    """
    ctx.context.thread.title = title
    return "named"


async def test_a_title_given_by_a_tool_is_kept(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "TOOLS", [*agent_module.TOOLS, name_the_thread])
    client = client_for(server=server)
    events = await client.send('call it @tool name_the_thread {"title": "Chosen by a tool"}')
    assert not errors(events), errors(events)
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id_of(events)})
    assert thread["title"] == "Chosen by a tool"


async def test_a_rename_during_the_turn_is_kept(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for(server=server)
    fake_model.tokens, fake_model.delay = 20, 0.05
    events: list[JSON] = []
    stream = client.stream("threads.create", {"input": user_input("a slow answer")})
    async for event in stream:
        events.append(event)
        if event["type"] == "thread.created":
            thread_id = event["thread"]["id"]
            await client.request("threads.update", {"thread_id": thread_id, "title": "Mine"})
    assert not errors(events)
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    assert thread["title"] == "Mine"
    # An untouched thread still gets its title.
    other = thread_id_of(await client.send("another"))
    named = await wait_until(
        lambda: client.request("threads.get_by_id", {"thread_id": other}), seconds=5
    )
    assert named["title"] == "A short title"
