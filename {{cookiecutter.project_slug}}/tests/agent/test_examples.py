"""The examples end to end over HTTP, in both OpenAI APIs: the get_time server tool and its clock
widget, the clock's Refresh action (and the actions the server refuses before any stream), and
the switch_theme client tool. This file goes with the examples (examples=no deletes it)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from chatkit.types import HiddenContextItem, WidgetItem
from chatkit.widgets import DynamicWidgetRoot

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
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
from tests.support.fake_openai import FakeModel, ToolCall, tool_outputs, user_texts

JSON = dict[str, Any]
PACKAGE = "{{ cookiecutter.project_slug }}"
API_MODES = ["responses", "chat_completions"]
FAKE_ID = "__fake_id__"
PARIS = "Europe/Paris"
REFRESH_PARIS: JSON = {"type": "clock.refresh", "payload": {"timezone": PARIS}}
ASK_PARIS = 'What time is it in Paris? @tool get_time {"timezone": "Europe/Paris"}'
MAKE_IT_DARK = 'Make it dark @tool switch_theme {"theme": "dark"}'
THEME_RESULT: JSON = {"theme": "dark", "applied": True}


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    """The app in each OpenAI API mode (the same servers test_chat.py uses)."""
    return app_factory(openai_api=request.param)


# --- helpers -------------------------------------------------------------------------------------


def component(node: JSON, type_: str) -> JSON:
    """The first component of that type in a widget tree (breadth first)."""
    queue = [node]
    while queue:
        current = queue.pop(0)
        if current.get("type") == type_:
            return current
        queue.extend(current.get("children") or [])
    raise AssertionError(f"no {type_} in {node}")


def click_action(widget: JSON) -> JSON:
    """The Button's action as the client sends it back: its type and payload (the store may
    add the action's defaults, such as `handler`)."""
    action = component(widget, "Button")["onClickAction"]
    return {"type": action["type"], "payload": action["payload"]}


def clock_face(widget: JSON) -> tuple[str, str, str, JSON]:
    """What the clock card shows: caption, time, day line, and its button's action."""
    texts = (component(widget, kind)["value"] for kind in ("Caption", "Title", "Text"))
    caption, title, day = texts
    return caption, title, day, click_action(widget)


def minutes_off(shown: str, timezone: str) -> int:
    """How far `HH:MM` is from the current time in `timezone`, in minutes (across midnight)."""
    assert re.fullmatch(r"\d\d:\d\d", shown), shown
    now = datetime.now(ZoneInfo(timezone))
    hours, minutes = (int(part) for part in shown.split(":"))
    diff = hours * 60 + minutes - (now.hour * 60 + now.minute)
    return abs((diff + 720) % 1440 - 720)


def tool_call_names(body: JSON) -> list[str]:
    """The function calls in a request's history, in either API's shape."""
    names = []
    for item in body.get("input") or body.get("messages") or []:
        if item.get("type") == "function_call":
            names.append(item["name"])
        for call in item.get("tool_calls") or []:
            names.append(call["function"]["name"])
    return names


async def stored_items(client: ChatKitClient, thread_id: str) -> list[JSON]:
    page = await client.request(
        "items.list", {"thread_id": thread_id, "order": "asc", "limit": 100}
    )
    return list(page["data"])


@dataclass
class Clock:
    """A thread whose assistant showed the Paris clock."""

    thread_id: str
    user_message_id: str
    widget: JSON
    answer: JSON
    events: list[JSON]


async def ask_for_the_time(client: ChatKitClient, thread_id: str | None = None) -> Clock:
    events = await client.send(ASK_PARIS, thread_id)
    assert not error_events(events), error_events(events)
    (user_message,) = done_items(events, "user_message")
    (widget,) = done_items(events, "widget")
    (answer,) = done_items(events, "assistant_message")
    return Clock(thread_id or thread_id_of(events), user_message["id"], widget, answer, events)


async def rewrite_widget(
    store: PostgresStore, user_id: str, thread_id: str, item_id: str, edit: Callable[[JSON], None]
) -> None:
    """Change the stored widget behind the app's back (same database, the user's context)."""
    context = make_context(user_id)
    item = await store.load_item(thread_id, item_id, context)
    assert isinstance(item, WidgetItem)
    tree = item.widget.model_dump(exclude_none=True)
    edit(tree)
    changed = item.model_copy(update={"widget": DynamicWidgetRoot.model_validate(tree)})
    await store.save_item(thread_id, changed, context)


# --- get_time: a server tool that streams progress and a widget ----------------------------------


async def test_get_time_shows_a_clock_and_the_model_reads_the_time(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """Progress, then a clock card with the current Paris time and a Refresh button, then an
    answer quoting the tool output the model really got; all stored in order with real ids."""
    client = client_for(server=server)
    clock = await ask_for_the_time(client)
    events, widget = clock.events, clock.widget

    kinds = [e["type"] for e in events]
    widget_at = next(
        i for i, e in enumerate(events) if e["type"] == "thread.item.done" and e["item"] is widget
    )
    assert "progress_update" in kinds[:widget_at], "progress comes before the widget"
    progress = next(e for e in events if e["type"] == "progress_update")
    assert PARIS in progress["text"]

    card = widget["widget"]
    assert card["type"] == "Card"
    assert component(card, "Caption")["value"] == f"Time in {PARIS}"
    shown = component(card, "Title")["value"]
    assert minutes_off(shown, PARIS) <= 1, f"the clock shows {shown}"
    assert click_action(card) == REFRESH_PARIS

    text = assistant_text(clock.answer)
    assert text.startswith("Tool said: It is ") and shown in text and PARIS in text
    first, second = streamed_requests(fake_model)
    assert tool_outputs(first) == []
    assert tool_outputs(second) == [text.removeprefix("Tool said: ")], "the model got the output"
    assert tool_call_names(second) == ["get_time"]

    items = await stored_items(client, clock.thread_id)
    assert [i["type"] for i in items] == ["user_message", "widget", "assistant_message"]
    ids = [i["id"] for i in items]
    assert len(set(ids)) == 3 and FAKE_ID not in ids
    assert ids == [clock.user_message_id, widget["id"], clock.answer["id"]]
    assert clock_face(items[1]["widget"]) == clock_face(card)


async def test_get_time_with_an_unknown_zone_answers_in_words(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """An unknown zone is a readable tool output the model quotes: no error, no widget."""
    client = client_for(server=server)
    events = await client.send('@tool get_time {"timezone": "Mars/Olympus"}')
    assert not error_events(events)
    assert done_items(events, "widget") == []
    (answer,) = done_items(events, "assistant_message")
    assert "Unknown time zone 'Mars/Olympus'" in assistant_text(answer)
    assert "Unknown time zone" in tool_outputs(streamed_requests(fake_model)[-1])[0]
    items = await stored_items(client, thread_id_of(events))
    assert [i["type"] for i in items] == ["user_message", "assistant_message"]


class ToolErrorLog(logging.Handler):
    """The WARNINGs of agent/tool_errors.py while a test runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"{PACKAGE}.agent.tool_errors")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")

    def __enter__(self) -> ToolErrorLog:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


@pytest.mark.parametrize(
    "arguments, problem",
    [
        ('{"timezone": 424242}', "timezone: Input should be a valid string"),
        ('{"zone": "424242"}', "timezone: Field required"),
        ('{"timezone": "424242"', "not valid JSON"),
    ],
    ids=["wrong type", "missing argument", "broken JSON"],
)
async def test_arguments_a_tool_refuses_are_logged_and_told_to_the_model(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    arguments: str,
    problem: str,
) -> None:
    """A WARNING names the tool and what is wrong, never the values; the model gets that as the
    tool's output (the fake model quotes it) and the turn ends normally."""
    client = client_for(server=server)
    calls = [ToolCall("get_time", arguments)]
    fake_model.tool_calls = lambda body: [] if tool_outputs(body) else calls
    with ToolErrorLog() as log:
        events = await client.send("What time is it?")
    assert not error_events(events), error_events(events)
    assert log.lines == [f"WARNING tool get_time: arguments refused: {problem}"]
    (answer,) = done_items(events, "assistant_message")
    said = assistant_text(answer)
    assert said.startswith("Tool said: Error: get_time was called with invalid arguments"), said
    assert problem in said and "424242" not in said
    assert not done_items(events, "widget"), "the tool did not run"


# --- clock.refresh: the widget's action ----------------------------------------------------------


async def test_refresh_replaces_the_clock_with_the_current_time(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    """Refresh re-renders the same widget item with the current time, streamed and stored."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    clock = await ask_for_the_time(client)
    widget_id = clock.widget["id"]

    def stop_the_clock(tree: JSON) -> None:
        component(tree, "Title")["value"] = "99:99"

    await rewrite_widget(store, user_id, clock.thread_id, widget_id, stop_the_clock)
    before = await stored_items(client, clock.thread_id)
    assert component(before[1]["widget"], "Title")["value"] == "99:99"
    calls = len(fake_model.requests)

    params = {"thread_id": clock.thread_id, "item_id": widget_id, "action": REFRESH_PARIS}
    events = [event async for event in client.stream("threads.custom_action", params)]
    assert not error_events(events)
    changes = [e for e in events if e["type"] in ("thread.item.replaced", "thread.item.updated")]
    assert changes, [e["type"] for e in events]
    assert {e["item"]["id"] if "item" in e else e["item_id"] for e in changes} == {widget_id}
    replaced = [e["item"] for e in changes if e["type"] == "thread.item.replaced"]
    for item in replaced:
        assert minutes_off(component(item["widget"], "Title")["value"], PARIS) <= 1

    after = await stored_items(client, clock.thread_id)
    assert [i["id"] for i in after] == [i["id"] for i in before], "same items, none added"
    shown = component(after[1]["widget"], "Title")["value"]
    assert minutes_off(shown, PARIS) <= 1, f"the stored clock shows {shown}"
    assert click_action(after[1]["widget"]) == REFRESH_PARIS
    assert after[0] == before[0] and after[2] == before[2]
    assert len(fake_model.requests) == calls, "an action does not call the model"


async def test_refresh_tells_the_page_and_the_model(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    """A refresh streams the `clock.refreshed` effect with its zone and stores hidden context:
    never sent to the client nor listed, but in the model's input on the next turn."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    clock = await ask_for_the_time(client)
    params = {"thread_id": clock.thread_id, "item_id": clock.widget["id"], "action": REFRESH_PARIS}
    events = [event async for event in client.stream("threads.custom_action", params)]

    effects = [e for e in events if e["type"] == "client_effect"]
    assert effects == [
        {"type": "client_effect", "name": "clock.refreshed", "data": {"timezone": PARIS}}
    ]
    assert "hidden_context_item" not in json.dumps(events)
    listed = await stored_items(client, clock.thread_id)
    assert [i["type"] for i in listed] == ["user_message", "widget", "assistant_message"]
    thread = await client.request("threads.get_by_id", {"thread_id": clock.thread_id})
    assert [i["type"] for i in thread["items"]["data"]] == [i["type"] for i in listed]
    stored = await store.load_thread_items(clock.thread_id, None, 10, "asc", make_context(user_id))
    (hidden,) = [i for i in stored.data if isinstance(i, HiddenContextItem)]
    assert hidden.content.startswith(f'<CLOCK_REFRESHED zone="{PARIS}">')
    redrawn = next(e["item"] for e in events if e["type"] == "thread.item.replaced")
    shown = component(redrawn["widget"], "Title")["value"]
    assert f"shows {shown}, " in hidden.content, "the model is told what the clock shows"

    before = len(streamed_requests(fake_model))
    assert not error_events(await client.send("What changed?", clock.thread_id))
    (sent,) = streamed_requests(fake_model)[before:]
    texts = user_texts(sent)
    assert texts[-1] == "What changed?"
    assert "<CLOCK_REFRESHED" in texts[-2] and hidden.content in texts[-2]


REFUSED_ACTIONS: dict[str, tuple[Callable[[Clock], JSON], str]] = {
    "unknown type": (
        lambda c: {"item_id": c.widget["id"], "action": {"type": "clock.explode", "payload": {}}},
        "invalid_action",
    ),
    "sent from a user message": (
        lambda c: {"item_id": c.user_message_id, "action": REFRESH_PARIS},
        "invalid_action",  # api.check_targets: the named item is not a widget
    ),
    "sent from no widget": (lambda c: {"action": REFRESH_PARIS}, "invalid_action"),
    "unknown zone": (
        lambda c: {
            "item_id": c.widget["id"],
            "action": {"type": "clock.refresh", "payload": {"timezone": "Mars/Olympus"}},
        },
        "invalid_action",
    ),
    "no zone": (
        lambda c: {"item_id": c.widget["id"], "action": {"type": "clock.refresh", "payload": {}}},
        "invalid_action",
    ),
    "payload not an object": (
        lambda c: {
            "item_id": c.widget["id"],
            "action": {"type": "clock.refresh", "payload": PARIS},
        },
        "invalid_action",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_ACTIONS))
async def test_bad_actions_are_refused_before_any_stream(
    case: str, server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    """An action the server cannot run is a 400 JSON error and leaves the thread as it was."""
    client = client_for(server=server)
    clock = await ask_for_the_time(client)
    before = await stored_items(client, clock.thread_id)
    make_params, code = REFUSED_ACTIONS[case]
    response = await post(
        client, "threads.custom_action", {"thread_id": clock.thread_id, **make_params(clock)}
    )
    json_error(response, 400, code)
    assert await stored_items(client, clock.thread_id) == before


async def test_an_action_the_widget_does_not_offer_is_refused(
    server: AppServer, client_for: Callable[..., ChatKitClient], store: PostgresStore
) -> None:
    """A known action type sent from a widget that has no such button is a 400."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    clock = await ask_for_the_time(client)

    def remove_the_buttons(tree: JSON) -> None:
        tree["children"] = [c for c in tree["children"] if c["type"] != "Row"]

    await rewrite_widget(store, user_id, clock.thread_id, clock.widget["id"], remove_the_buttons)
    before = await stored_items(client, clock.thread_id)
    params = {"thread_id": clock.thread_id, "item_id": clock.widget["id"], "action": REFRESH_PARIS}
    json_error(await post(client, "threads.custom_action", params), 400, "invalid_action")
    assert await stored_items(client, clock.thread_id) == before


async def test_actions_on_someone_elses_or_a_missing_widget_are_404(
    server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    """Another user's thread and widget, or a widget id that does not exist, are 404."""
    owner, stranger = client_for(server=server), client_for(server=server)
    clock = await ask_for_the_time(owner)
    before = await stored_items(owner, clock.thread_id)
    params = {"thread_id": clock.thread_id, "item_id": clock.widget["id"], "action": REFRESH_PARIS}
    json_error(await post(stranger, "threads.custom_action", params), 404, "not_found")
    missing = {**params, "item_id": "msg_does_not_exist"}
    json_error(await post(owner, "threads.custom_action", missing), 404, "not_found")
    assert await stored_items(owner, clock.thread_id) == before


# --- switch_theme: a client tool ------------------------------------------------------------------


async def test_switch_theme_waits_for_the_browser_then_continues(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """The run stops at a pending client tool call; its output completes the call, the model
    reads it and answers; a second output with nothing pending is a 400."""
    client = client_for(server=server)
    events = await client.send(MAKE_IT_DARK)
    assert not error_events(events)
    thread_id = thread_id_of(events)
    item_events = [e for e in events if e["type"].startswith("thread.item.")]
    last = item_events[-1]
    assert last["type"] == "thread.item.done"
    call = last["item"]
    assert call["type"] == "client_tool_call" and call["status"] == "pending"
    assert call["name"] == "switch_theme" and call["arguments"] == {"theme": "dark"}
    assert done_items(events, "assistant_message") == []
    assert len(streamed_requests(fake_model)) == 1, "the run stopped at the client tool"

    items = await stored_items(client, thread_id)
    assert [i["type"] for i in items] == ["user_message", "client_tool_call"]
    assert items[-1] == call, "the newest stored item is the streamed call"
    assert call["id"] != FAKE_ID and call["id"] != items[0]["id"]
    assert call["call_id"] and call["call_id"] != FAKE_ID

    output = {"thread_id": thread_id, "result": THEME_RESULT}
    continued = [e async for e in client.stream("threads.add_client_tool_output", output)]
    assert not error_events(continued)
    quoted = json.dumps(THEME_RESULT)
    (answer,) = done_items(continued, "assistant_message")
    assert assistant_text(answer) == f"Tool said: {quoted}"
    second = streamed_requests(fake_model)[-1]
    assert tool_outputs(second) == [quoted], "the model got the browser's output"
    assert tool_call_names(second) == ["switch_theme"]

    items = await stored_items(client, thread_id)
    assert [i["type"] for i in items] == ["user_message", "client_tool_call", "assistant_message"]
    completed = items[1]
    assert completed["id"] == call["id"]
    assert completed["status"] == "completed" and completed["output"] == THEME_RESULT
    assert items[2]["id"] == answer["id"] and len({i["id"] for i in items}) == 3

    again = await post(client, "threads.add_client_tool_output", output)
    json_error(again, 400, "no_pending_tool_call")
    assert await stored_items(client, thread_id) == items


async def test_a_conversation_goes_on_after_tool_turns(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """History holding a widget and completed client tool calls converts for either API, and
    every stored item keeps its own id (no placeholder ids colliding in one thread)."""
    client = client_for(server=server)
    thread_id = (await ask_for_the_time(client)).thread_id
    for theme in ("dark", "light"):
        events = await client.send("@tool switch_theme " + json.dumps({"theme": theme}), thread_id)
        assert not error_events(events)
        result = {"theme": theme, "applied": True}
        params = {"thread_id": thread_id, "result": result}
        events = [e async for e in client.stream("threads.add_client_tool_output", params)]
        assert not error_events(events)

    events = await client.send("Thanks!", thread_id)
    assert not error_events(events)
    (answer,) = done_items(events, "assistant_message")
    assert assistant_text(answer).startswith("tok0")

    sent = streamed_requests(fake_model)[-1]
    history = json.dumps(sent)
    assert "graphical UI widget" in history, "the clock is in the history"
    assert tool_call_names(sent) == ["switch_theme", "switch_theme"]
    outputs = [
        item.get("output", item.get("content"))
        for item in sent.get("input") or sent.get("messages") or []
        if item.get("type") == "function_call_output" or item.get("role") == "tool"
    ]
    assert outputs == [json.dumps({"theme": t, "applied": True}) for t in ("dark", "light")]

    items = await stored_items(client, thread_id)
    assert [i["type"] for i in items] == [
        "user_message",
        "widget",
        "assistant_message",
        *["user_message", "client_tool_call", "assistant_message"] * 2,
        "user_message",
        "assistant_message",
    ]
    ids = [i["id"] for i in items]
    assert len(set(ids)) == len(ids) and FAKE_ID not in ids
    assert [i["status"] for i in items if i["type"] == "client_tool_call"] == ["completed"] * 2


# --- compare_times: a tool that shows its own workflow and cites a source -----------------------


async def test_compare_times_shows_its_steps_and_cites_its_source(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """A workflow with one task per zone (each updated when its check is done) and a summary; the
    model's answer after it carries the tool's source (the IANA database) as an annotation."""
    client = client_for(server=server)
    zones = ["Europe/Paris", "Asia/Tokyo", "Mars/Base"]
    events = await client.send(
        f"Paris or Tokyo? @tool compare_times {json.dumps({'timezones': zones})}"
    )
    assert not error_events(events), error_events(events)

    added = [e["item"] for e in events if e["type"] == "thread.item.added"]
    assert added[0]["type"] == "workflow" and added[0]["workflow"]["type"] == "custom"
    updates = [e["update"]["type"] for e in events if e["type"] == "thread.item.updated"]
    assert updates.count("workflow.task.updated") == 3, updates  # each check, as it finishes
    # (chatkit may close a workflow twice when the tool ends it before its first event is out)
    *_, workflow = done_items(events, "workflow")
    assert {w["id"] for w in done_items(events, "workflow")} == {added[0]["id"]}
    tasks = workflow["workflow"]["tasks"]
    assert [t["status_indicator"] for t in tasks] == ["complete"] * 3
    assert (
        tasks[0]["title"].startswith("Europe/Paris: ") and tasks[2]["title"] == "Mars/Base: unknown"
    )
    assert workflow["workflow"]["summary"]["title"] == "Compared 3 time zones"

    (answer,) = done_items(events, "assistant_message")
    (annotation,) = answer["content"][-1]["annotations"]
    assert annotation["source"]["url"] == "https://www.iana.org/time-zones"
    assert annotation["index"] == len(assistant_text(answer))
    items = await stored_items(client, thread_id_of(events))
    assert [i["type"] for i in items] == ["user_message", "workflow", "assistant_message"]
    assert items[2]["content"][-1]["annotations"] == [annotation]
    assert "Asia/Tokyo: " in assistant_text(items[2]), "the model got each zone's time"
