"""The example widgets and actions beyond Refresh, over HTTP: "Ask about this time" (the agent
answers with the question in view), Refresh as a sync action, a clock sent without a widget
(`clock.show`), the streaming countdown card, and the `.widget` files as ChatKit Studio
exports them. This file goes with the examples (examples=no deletes it)."""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import HiddenContextItem, WidgetItem
from chatkit.widgets import WidgetTemplate
from jinja2 import UndefinedError

from {{ cookiecutter.project_slug }}.agent import tools, widgets
from {{ cookiecutter.project_slug }}.agent.actions import offered_actions
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.agent.test_examples import (
    ASK_PARIS,
    PARIS,
    Clock,
    ask_for_the_time,
    clock_face,
    component,
    minutes_off,
    rewrite_widget,
    stored_items,
)
from tests.support.app import AppServer
from tests.support.chatkit import (
    done_items,
    error_events,
    json_error,
    post,
    streamed_requests,
    thread_id_of,
)
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel, last_user_text, user_texts

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]
TOKYO = "Asia/Tokyo"
ASK_ACTION: JSON = {"type": "clock.ask", "payload": {"timezone": PARIS}}
REFRESH_PARIS: JSON = {"type": "clock.refresh", "payload": {"timezone": PARIS}}
WIDGET_FILES = sorted(Path(widgets.__file__).parent.glob("*.widget"))


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param)


def stop_the_clock(tree: JSON) -> None:
    component(tree, "Title")["value"] = "99:99"


# --- clock.ask: an action that runs the agent -----------------------------------------------------


async def test_ask_about_this_time_answers_with_the_question_in_view(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """The button stores hidden context, then the agent answers in the same stream: the model's
    newest input is that context, the answer is stored, the hidden item is never listed."""
    client = client_for(server=server)
    clock = await ask_for_the_time(client)
    fake_model.reply = lambda body: "Seen: " + last_user_text(body)
    before = len(streamed_requests(fake_model))

    params = {"thread_id": clock.thread_id, "item_id": clock.widget["id"], "action": ASK_ACTION}
    events = [event async for event in client.stream("threads.custom_action", params)]

    assert not error_events(events)
    (sent,) = streamed_requests(fake_model)[before:]
    question = user_texts(sent)[-1]
    assert f'<CLOCK_QUESTION zone="{PARIS}">' in question
    assert user_texts(sent)[0] == ASK_PARIS, "the history comes first"
    (answer,) = done_items(events, "assistant_message")
    assert assistant_text(answer) == "Seen: " + question
    assert "hidden_context_item" not in json.dumps(events)
    items = await stored_items(client, clock.thread_id)
    assert [i["type"] for i in items] == [
        "user_message",
        "widget",
        "assistant_message",
        "assistant_message",
    ]
    assert items[-1] == answer


# --- threads.sync_custom_action -------------------------------------------------------------------


async def test_refresh_as_a_sync_action_returns_and_stores_the_clock(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    """`streaming: false` Refresh: a JSON answer with the redrawn item, stored the same; no
    stream, no model call."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    clock = await ask_for_the_time(client)
    await rewrite_widget(store, user_id, clock.thread_id, clock.widget["id"], stop_the_clock)
    calls = len(fake_model.requests)

    params = {"thread_id": clock.thread_id, "item_id": clock.widget["id"], "action": REFRESH_PARIS}
    response = await post(client, "threads.sync_custom_action", params)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    updated = response.json()["updated_item"]
    assert updated["id"] == clock.widget["id"] and updated["type"] == "widget"
    shown = component(updated["widget"], "Title")["value"]
    assert minutes_off(shown, PARIS) <= 1
    items = await stored_items(client, clock.thread_id)
    assert [i["id"] for i in items] == [
        clock.user_message_id,
        clock.widget["id"],
        clock.answer["id"],
    ]
    assert clock_face(items[1]["widget"]) == clock_face(updated["widget"]), "it is stored"
    assert len(fake_model.requests) == calls


SYNC_REFUSALS: dict[str, tuple[Callable[[Clock], JSON], int, str]] = {
    "unknown type": (
        lambda c: {"item_id": c.widget["id"], "action": {"type": "clock.explode"}},
        400,
        "invalid_action",
    ),
    "no sync form": (
        lambda c: {"item_id": c.widget["id"], "action": ASK_ACTION},
        400,
        "invalid_action",
    ),
    "not a widget": (
        lambda c: {"item_id": c.user_message_id, "action": REFRESH_PARIS},
        400,
        "invalid_action",
    ),
    "no widget": (lambda c: {"action": REFRESH_PARIS}, 400, "invalid_action"),
    "bad payload": (
        lambda c: {
            "item_id": c.widget["id"],
            "action": {"type": "clock.refresh", "payload": {"timezone": "Mars/Olympus"}},
        },
        400,
        "invalid_action",
    ),
    "missing item": (
        lambda c: {"item_id": "wdg_missing", "action": REFRESH_PARIS},
        404,
        "not_found",
    ),
}


@pytest.mark.parametrize("case", list(SYNC_REFUSALS))
async def test_sync_actions_we_cannot_run_are_refused_before_anything_runs(
    case: str,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    clock = await ask_for_the_time(client)
    await rewrite_widget(store, user_id, clock.thread_id, clock.widget["id"], stop_the_clock)
    before, calls = await stored_items(client, clock.thread_id), len(fake_model.requests)
    make_params, status, code = SYNC_REFUSALS[case]

    response = await post(
        client, "threads.sync_custom_action", {"thread_id": clock.thread_id, **make_params(clock)}
    )

    json_error(response, status, code)
    assert await stored_items(client, clock.thread_id) == before
    assert len(fake_model.requests) == calls


async def test_sync_action_on_someone_elses_widget_is_404(
    client_for: Callable[..., ChatKitClient], store: PostgresStore
) -> None:
    owner_id = f"user-{uuid.uuid4().hex}"
    owner, stranger = client_for(owner_id), client_for()
    clock = await ask_for_the_time(owner)
    await rewrite_widget(store, owner_id, clock.thread_id, clock.widget["id"], stop_the_clock)
    before = await stored_items(owner, clock.thread_id)
    params = {"thread_id": clock.thread_id, "item_id": clock.widget["id"], "action": REFRESH_PARIS}
    json_error(await post(stranger, "threads.sync_custom_action", params), 404, "not_found")
    stranger_thread = thread_id_of(await stranger.send("mine"))
    theirs = {**params, "thread_id": stranger_thread}
    json_error(await post(stranger, "threads.sync_custom_action", theirs), 404, "not_found")
    assert await stored_items(owner, clock.thread_id) == before


# --- clock.show: an action sent without a widget --------------------------------------------------


async def test_show_clock_without_a_widget_streams_a_new_clock(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """`sendCustomAction` with no item: a new clock item for the zone, stored; a zone the
    machine does not know is a 400."""
    client = client_for()
    thread_id = thread_id_of(await client.send("hello"))
    calls = len(fake_model.requests)
    params = {
        "thread_id": thread_id,
        "action": {"type": "clock.show", "payload": {"timezone": TOKYO}},
    }

    events = [event async for event in client.stream("threads.custom_action", params)]

    assert not error_events(events)
    (clock,) = done_items(events, "widget")
    assert component(clock["widget"], "Caption")["value"] == f"Time in {TOKYO}"
    assert minutes_off(component(clock["widget"], "Title")["value"], TOKYO) <= 1
    assert set(offered_actions(clock["widget"])) == {"clock.refresh", "clock.ask"}
    stored = (await stored_items(client, thread_id))[-1]
    assert stored["id"] == clock["id"]
    assert clock_face(stored["widget"]) == clock_face(clock["widget"])
    assert len(fake_model.requests) == calls

    bad = {
        "thread_id": thread_id,
        "action": {"type": "clock.show", "payload": {"timezone": "Nowhere"}},
    }
    json_error(await post(client, "threads.custom_action", bad), 400, "invalid_action")


# --- count_down: a widget that updates while it streams -------------------------------------------


async def test_count_down_streams_a_card_that_updates_live(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The card is added, its text grows by deltas as the tool counts (each arriving a step
    after the last), the final state replaces it (Done badge), and the item done is stored."""
    monkeypatch.setattr(tools, "COUNT_DOWN_STEP_SECONDS", 0.3)
    client = client_for(server=server)
    message = {"content": [{"type": "input_text", "text": '@tool count_down {"start": 3}'}],
               "attachments": [], "inference_options": {}}  # fmt: skip
    timed: list[tuple[float, JSON]] = []
    async for event in client.stream("threads.create", {"input": message}):
        timed.append((time.monotonic(), event))
    events = [event for _, event in timed]
    assert not error_events(events)

    widget_events = [
        (at, e)
        for at, e in timed
        if e["type"].startswith("thread.item.")
        and (e.get("item") or {}).get("type", "") + e.get("update", {}).get("type", "")
        in ("widget", "widget.streaming_text.value_delta", "widget.root.updated")
    ]
    kinds = [
        e["type"] + (":" + e["update"]["type"] if "update" in e else "") for _, e in widget_events
    ]
    assert kinds == [
        "thread.item.added",
        "thread.item.updated:widget.streaming_text.value_delta",
        "thread.item.updated:widget.streaming_text.value_delta",
        "thread.item.updated:widget.root.updated",
        "thread.item.done",
    ], kinds
    added, first, second, final, done = (e for _, e in widget_events)
    text = component(added["item"]["widget"], "Text")
    assert (text["id"], text["value"], text["streaming"]) == ("countdown", "3 ... ", True)
    assert [u["update"]["delta"] for u in (first, second)] == ["2 ... ", "1 ... "]
    assert {u["update"]["component_id"] for u in (first, second)} == {"countdown"}
    assert not first["update"]["done"]
    last = final["update"]["widget"]
    assert component(last, "Text")["value"] == "3 ... 2 ... 1 ... Liftoff!"
    assert component(last, "Badge")["label"] == "Done"
    assert done["item"]["widget"] == last and done["item"]["id"] == added["item"]["id"]
    times = [at for at, _ in widget_events[:4]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.2, f"the card updates live, a step apart: {gaps}"

    (answer,) = done_items(events, "assistant_message")
    assert assistant_text(answer).startswith("Tool said: Counted down from 3")
    items = await stored_items(client, thread_id_of(events))
    assert [i["type"] for i in items] == ["user_message", "widget", "assistant_message"]
    assert items[1]["widget"] == last


# --- the .widget files ----------------------------------------------------------------------------


def studio_source(definition: JSON) -> JSON:
    """The Studio project inside an export (`encodedWidget`: base64url JSON)."""
    encoded = definition["encodedWidget"]
    return dict(json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))))


@pytest.mark.parametrize("path", WIDGET_FILES, ids=lambda p: p.name)
def test_widget_files_are_chatkit_studio_exports(path: Path) -> None:
    """Each file has what Studio exports; its template built with Studio's sample data gives
    Studio's preview, and the data it needs is what its schema requires."""
    definition = json.loads(path.read_text(encoding="utf-8"))
    assert set(definition) == {
        "version",
        "name",
        "template",
        "jsonSchema",
        "outputJsonPreview",
        "encodedWidget",
    }
    assert definition["version"] == "1.0"
    source = studio_source(definition)
    assert source["name"] == definition["name"] and "<Card" in source["view"]
    sample = source["defaultState"]
    schema = definition["jsonSchema"]
    assert set(sample) == set(schema["required"]) == set(schema["properties"])
    template = WidgetTemplate.from_file(str(path))
    assert template.build(sample).model_dump(exclude_none=True) == definition["outputJsonPreview"]
    with pytest.raises(UndefinedError):
        template.build({})


def test_the_clock_comes_from_its_widget_file() -> None:
    """clock_widget fills in clock.widget: the zone, the time, the day, and both buttons."""
    now = tools.now_in(PARIS)
    clock = widgets.clock_widget(PARIS, now).model_dump(exclude_none=True)
    assert [path.name for path in WIDGET_FILES] == ["clock.widget", "countdown.widget"]
    assert component(clock, "Title")["value"] == f"{now:%H:%M}"
    assert component(clock, "Text")["value"] == widgets.describe_day(now)
    actions = [b["onClickAction"] for b in component(clock, "Row")["children"]]
    assert actions == [
        {"type": widgets.CLOCK_REFRESH, "payload": {"timezone": PARIS}},
        {"type": widgets.CLOCK_ASK, "payload": {"timezone": PARIS}},
    ]


async def test_a_hidden_context_item_is_stored_for_ask(
    client_for: Callable[..., ChatKitClient], store: PostgresStore
) -> None:
    """What the model read is stored in the thread, as a hidden item after the clock."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    clock = await ask_for_the_time(client)
    params = {"thread_id": clock.thread_id, "item_id": clock.widget["id"], "action": ASK_ACTION}
    assert not error_events([e async for e in client.stream("threads.custom_action", params)])
    page = await store.load_thread_items(clock.thread_id, None, 10, "asc", make_context(user_id))
    kinds = [type(item).__name__ for item in page.data]
    assert kinds[:3] == ["UserMessageItem", "WidgetItem", "AssistantMessageItem"]
    assert kinds[3:] == ["HiddenContextItem", "AssistantMessageItem"]
    hidden = page.data[3]
    assert isinstance(hidden, HiddenContextItem) and isinstance(page.data[1], WidgetItem)
    assert str(hidden.content).startswith(f'<CLOCK_QUESTION zone="{PARIS}">')
