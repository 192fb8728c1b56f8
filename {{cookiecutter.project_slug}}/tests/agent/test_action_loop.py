"""Actions that close the loop, without the examples: hidden context the model reads, the agent
answering inside an action (respond with no user message), sync actions served and stored,
and the limits counting actions that call the model like messages.

Handlers are registered for a test in `actions.ACTIONS` (the app runs in this process).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from chatkit.types import HiddenContextItem, ThreadStreamEvent, WidgetItem
from pydantic import BaseModel

from {{ cookiecutter.project_slug }}.agent import actions
from {{ cookiecutter.project_slug }}.agent.actions import ActionCall, ActionHandler
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.agent.test_actions import action_params, button, card, stream, widget_item
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import items_of, json_error, new_thread, post, rows
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel, last_user_text, user_texts

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]
REMEMBER = "test.remember"
"""Stores hidden context only (no widget needed, no model call)."""
ASK = "test.ask"
"""Stores hidden context, then the agent answers (runs_model)."""
BUMP = "test.bump"
"""A widget action with a sync form: the widget's counter goes up by `by`."""


class Note(BaseModel):
    text: str


class Bump(BaseModel):
    by: int = 1


def counter(value: int) -> Any:
    return card({"type": "Text", "value": str(value)}, button(BUMP, {"by": 1}))


def counted(widget: JSON) -> int:
    return int(widget["children"][0]["value"])


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[ActionCall[Any]]:
    """Registers REMEMBER, ASK and BUMP for this test; returns the calls their handlers get."""
    seen: list[ActionCall[Any]] = []

    async def remember(call: ActionCall[Note]) -> AsyncIterator[ThreadStreamEvent]:
        seen.append(call)
        yield call.hidden_context(f"<NOTE>{call.payload.text}</NOTE>")

    async def ask(call: ActionCall[Note]) -> AsyncIterator[ThreadStreamEvent]:
        seen.append(call)
        yield call.hidden_context(f"<QUESTION>{call.payload.text}</QUESTION>")
        async for event in call.run_agent():
            yield event

    async def no_stream(call: ActionCall[Bump]) -> AsyncIterator[ThreadStreamEvent]:
        raise AssertionError("the sync form runs, not this")
        yield  # pragma: no cover

    async def bump(call: ActionCall[Bump]) -> WidgetItem | None:
        seen.append(call)
        assert call.sender is not None
        if call.payload.by == 0:
            return None
        value = counted(call.sender.widget.model_dump()) + call.payload.by
        return call.sender.model_copy(update={"widget": counter(value)})

    monkeypatch.setitem(
        actions.ACTIONS, REMEMBER, ActionHandler(remember, payload=Note, needs_widget=False)
    )
    monkeypatch.setitem(
        actions.ACTIONS,
        ASK,
        ActionHandler(ask, payload=Note, needs_widget=False, runs_model=True),
    )
    monkeypatch.setitem(actions.ACTIONS, BUMP, ActionHandler(no_stream, payload=Bump, sync=bump))
    return seen


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param)


def streamed(fake: FakeModel) -> list[JSON]:
    return [body for body in fake.requests if body.get("stream")]


async def hidden_items(store: PostgresStore, user_id: str, thread_id: str) -> list[str]:
    page = await store.load_thread_items(thread_id, None, 100, "asc", make_context(user_id))
    return [str(i.content) for i in page.data if isinstance(i, HiddenContextItem)]


# --- hidden context and the agent inside an action ------------------------------------------------


@pytest.mark.usefixtures("calls")  # registers REMEMBER
async def test_hidden_context_reaches_the_model_on_the_next_turn(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    """Stored, not streamed, not listed (items.list, threads.get_by_id); the next model call
    reads it, just before the new message, as a user-role message."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    thread_id = await new_thread(client)
    before = await items_of(client, thread_id)
    model_calls = len(fake_model.requests)

    events = await stream(
        client, "threads.custom_action", action_params(thread_id, REMEMBER, {"text": "blue"})
    )

    assert [e["type"] for e in events] == ["stream_options"]
    assert len(fake_model.requests) == model_calls
    assert await items_of(client, thread_id) == before
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    assert thread["items"]["data"] == before
    assert await hidden_items(store, user_id, thread_id) == ["<NOTE>blue</NOTE>"]

    assert "error" not in [e["type"] for e in await client.send("and now?", thread_id)]
    texts = user_texts(streamed(fake_model)[-1])
    assert texts[-1] == "and now?"
    assert "<NOTE>blue</NOTE>" in texts[-2] and "Hidden context" in texts[-2]


async def test_an_action_can_have_the_agent_answer_right_away(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
    calls: list[ActionCall[Any]],
) -> None:
    """respond() with no user message: the model's newest input is the hidden context; its
    answer streams in the action's stream and is stored; nothing else is added."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    thread_id = await new_thread(client)
    before = await items_of(client, thread_id)
    fake_model.reply = lambda body: "Seen: " + last_user_text(body)

    events = await stream(
        client, "threads.custom_action", action_params(thread_id, ASK, {"text": "tides"})
    )

    assert "error" not in [e["type"] for e in events]
    deltas = [e for e in events if e["type"] == "thread.item.updated"]
    assert deltas, "the answer streams"
    (answer,) = [
        e["item"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    ]
    sent = streamed(fake_model)[-1]
    assert "<QUESTION>tides</QUESTION>" in user_texts(sent)[-1]
    assert assistant_text(answer) == "Seen: " + user_texts(sent)[-1]
    assert user_texts(sent)[0] == "hello", "with the thread's history before it"
    assert await items_of(client, thread_id) == [*before, answer]
    assert await hidden_items(store, user_id, thread_id) == ["<QUESTION>tides</QUESTION>"]
    assert "hidden_context_item" not in json.dumps(events)


# --- threads.sync_custom_action -------------------------------------------------------------------


async def widget_thread(
    client: ChatKitClient, store: PostgresStore, user_id: str, value: int = 1
) -> tuple[str, WidgetItem]:
    thread_id = await new_thread(client)
    item = widget_item(thread_id, counter(value))
    await store.add_thread_item(thread_id, item, make_context(user_id))
    return thread_id, item


async def test_sync_action_returns_the_updated_item_and_stores_it(
    client_for: Callable[..., ChatKitClient],
    store: PostgresStore,
    fake_model: FakeModel,
    calls: list[ActionCall[Any]],
) -> None:
    """A JSON answer (no stream) with the item the handler updated, which is stored; a
    handler that updates nothing answers without an item and changes nothing."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    thread_id, item = await widget_thread(client, store, user_id, value=41)
    model_calls = len(fake_model.requests)

    params = action_params(thread_id, BUMP, {"by": 1}, item.id)
    response = await post(client, "threads.sync_custom_action", params)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    updated = response.json()["updated_item"]
    assert updated["id"] == item.id and counted(updated["widget"]) == 42
    stored = await store.load_item(thread_id, item.id, make_context(user_id))
    assert isinstance(stored, WidgetItem) and counted(stored.widget.model_dump()) == 42
    (call,) = calls
    assert call.sender is not None and call.sender.id == item.id
    assert call.payload == Bump(by=1) and call.context.user.id == user_id

    nothing = await post(
        client, "threads.sync_custom_action", action_params(thread_id, BUMP, {"by": 0}, item.id)
    )
    assert nothing.status_code == 200 and nothing.json().get("updated_item") is None
    stored = await store.load_item(thread_id, item.id, make_context(user_id))
    assert isinstance(stored, WidgetItem) and counted(stored.widget.model_dump()) == 42
    assert len(fake_model.requests) == model_calls


SYNC_REFUSED: dict[str, tuple[Callable[[str, str, str], JSON], int, str]] = {
    "unknown type": (lambda t, w, m: action_params(t, "no.such", {}, w), 400, "invalid_action"),
    "no sync form": (
        lambda t, w, m: action_params(t, REMEMBER, {"text": "x"}, w),
        400,
        "invalid_action",
    ),
    "from a message": (lambda t, w, m: action_params(t, BUMP, {"by": 1}, m), 400, "invalid_action"),
    "without a widget": (lambda t, w, m: action_params(t, BUMP, {"by": 1}), 400, "invalid_action"),
    "bad payload": (
        lambda t, w, m: action_params(t, BUMP, {"by": "lots"}, w),
        400,
        "invalid_action",
    ),
    "missing item": (lambda t, w, m: action_params(t, BUMP, {}, "wdg_missing"), 404, "not_found"),
    "missing thread": (lambda t, w, m: action_params("thr_missing", BUMP, {}, w), 404, "not_found"),
}


@pytest.mark.parametrize("case", list(SYNC_REFUSED))
async def test_sync_actions_are_checked_before_anything_runs(
    case: str,
    client_for: Callable[..., ChatKitClient],
    store: PostgresStore,
    calls: list[ActionCall[Any]],
) -> None:
    """Refusals are JSON errors (never the SDK's 500), no handler runs, nothing changes."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    thread_id, item = await widget_thread(client, store, user_id)
    before = await items_of(client, thread_id)
    message_id = before[0]["id"]
    make, status, code = SYNC_REFUSED[case]

    response = await post(
        client, "threads.sync_custom_action", make(thread_id, item.id, message_id)
    )

    json_error(response, status, code)
    assert calls == []
    assert await items_of(client, thread_id) == before


async def test_sync_action_on_another_users_widget_is_404(
    client_for: Callable[..., ChatKitClient],
    store: PostgresStore,
    calls: list[ActionCall[Any]],
) -> None:
    owner_id = f"user-{uuid.uuid4().hex}"
    owner, stranger = client_for(owner_id), client_for()
    thread_id, item = await widget_thread(owner, store, owner_id)
    before = await items_of(owner, thread_id)
    params = action_params(thread_id, BUMP, {"by": 1}, item.id)
    json_error(await post(stranger, "threads.sync_custom_action", params), 404, "not_found")
    own_thread = await new_thread(stranger)
    elsewhere = action_params(own_thread, BUMP, {"by": 1}, item.id)
    json_error(await post(stranger, "threads.sync_custom_action", elsewhere), 404, "not_found")
    assert calls == []
    assert await items_of(owner, thread_id) == before


# --- limits: an action that calls the model counts as a message -----------------------------------


async def test_actions_that_call_the_model_are_held_to_the_daily_budget(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    calls: list[ActionCall[Any]],
    database_url: str,
) -> None:
    """With the day's tokens spent, an action that runs the model is refused (429
    daily_budget_exceeded, before any model call); one that does not still runs."""
    server = app_factory(user_daily_tokens=10)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    thread_id = await new_thread(client)  # the fake model's answer and title spend the 10

    async def spent() -> bool:
        query = "SELECT tokens FROM daily_usage WHERE user_id = %s AND tokens >= 10"
        return bool(await rows(database_url, query, user_id))

    assert await wait_until(spent), "the turn's usage is recorded once its stream has ended"
    model_calls = len(fake_model.requests)

    refused = await post(
        client, "threads.custom_action", action_params(thread_id, ASK, {"text": "q"})
    )
    json_error(refused, 429, "daily_budget_exceeded")
    assert len(fake_model.requests) == model_calls
    allowed = await stream(
        client, "threads.custom_action", action_params(thread_id, REMEMBER, {"text": "n"})
    )
    assert [e["type"] for e in allowed] == ["stream_options"]
    assert [c.payload for c in calls] == [Note(text="n")]
