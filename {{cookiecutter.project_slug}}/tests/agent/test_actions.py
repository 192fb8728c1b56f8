"""Widget actions and client tool outputs, without the examples.

Handlers are registered for a test in `actions.ACTIONS` (the app runs in this process), so
these tests hold whether or not the project was generated with the example clock. Every
refusal is a 400 JSON error before any stream, and leaves the thread as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from chatkit.actions import Action
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    NoticeEvent,
    ProgressUpdateEvent,
    ThreadItemDoneEvent,
    ThreadStreamEvent,
    WidgetItem,
)
from chatkit.widgets import DynamicWidgetRoot
from pydantic import BaseModel

from {{ cookiecutter.project_slug }}.agent import actions
from {{ cookiecutter.project_slug }}.agent.actions import (
    ActionCall,
    ActionHandler,
    InvalidActionError,
    offered_actions,
    parse_action,
)
from {{ cookiecutter.project_slug }}.chat import server
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, assistant_text
from {{ cookiecutter.project_slug }}.http import checks
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support.chatkit import items_of, json_error, new_thread, post, tool_call
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]
NOTE = "test.note"
"""A registered action any client may send (needs_widget=False)."""
PRESS = "test.press"
"""A registered action only a widget offering it may send."""
OTHER = "test.other"


class NotePayload(BaseModel):
    text: str
    times: int = 1


class PressPayload(BaseModel):
    choice: str = "default"


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> list[ActionCall[Any]]:
    """Registers NOTE and PRESS for this test; returns the calls their handlers receive."""
    calls: list[ActionCall[Any]] = []

    async def note(call: ActionCall[NotePayload]) -> AsyncIterator[ThreadStreamEvent]:
        calls.append(call)
        yield ProgressUpdateEvent(text="noting")
        yield NoticeEvent(level="info", message=f"noted {call.payload.text}")
        reply = AssistantMessageItem(
            id=f"msg_note_{uuid.uuid4().hex}",
            thread_id=call.thread.id,
            created_at=datetime.now(UTC),
            content=[AssistantMessageContent(text=call.payload.text * call.payload.times)],
        )
        yield ThreadItemDoneEvent(item=reply)

    async def press(call: ActionCall[PressPayload]) -> AsyncIterator[ThreadStreamEvent]:
        calls.append(call)
        yield NoticeEvent(level="info", message=f"pressed {call.payload.choice}")

    monkeypatch.setitem(
        actions.ACTIONS, NOTE, ActionHandler(note, payload=NotePayload, needs_widget=False)
    )
    monkeypatch.setitem(actions.ACTIONS, PRESS, ActionHandler(press, payload=PressPayload))
    return calls


# --- helpers --------------------------------------------------------------------------------


def button(action_type: str, payload: JSON | None = None) -> JSON:
    return {
        "type": "Button",
        "label": "Go",
        "onClickAction": {"type": action_type, "payload": payload},
    }


def card(*children: JSON, **extra: Any) -> DynamicWidgetRoot:
    return DynamicWidgetRoot.model_validate({"type": "Card", "children": list(children), **extra})


def widget_item(thread_id: str, widget: DynamicWidgetRoot) -> WidgetItem:
    return WidgetItem(
        id=f"wdg_{uuid.uuid4().hex}",
        thread_id=thread_id,
        created_at=datetime.now(UTC),
        widget=widget,
    )


async def thread_with_widget(
    client_for: Callable[..., ChatKitClient], store: PostgresStore, widget: DynamicWidgetRoot
) -> tuple[ChatKitClient, str, WidgetItem]:
    """A new user's client and thread, the thread holding `widget` (stored as a tool would)."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    thread_id = await new_thread(client)
    item = widget_item(thread_id, widget)
    await store.add_thread_item(thread_id, item, make_context(user_id))
    return client, thread_id, item


def action_params(
    thread_id: str, action_type: str, payload: Any = None, item_id: str | None = None
) -> JSON:
    params: JSON = {"thread_id": thread_id, "action": {"type": action_type, "payload": payload}}
    if item_id is not None:
        params["item_id"] = item_id
    return params


async def stream(client: ChatKitClient, type_: str, params: JSON) -> list[JSON]:
    return [event async for event in client.stream(type_, params)]


# --- threads.custom_action: refusals --------------------------------------------------------


async def test_unknown_action_type_is_400_before_any_stream(
    client_for: Callable[..., ChatKitClient],
) -> None:
    """An action type nobody registered is refused with `invalid_action`; nothing changes."""
    client = client_for()
    thread_id = await new_thread(client)
    before = await items_of(client, thread_id)

    response = await post(
        client, "threads.custom_action", action_params(thread_id, "no.such.action", {})
    )
    message = json_error(response, 400, "invalid_action")["message"]
    assert "no.such.action" in message
    assert await items_of(client, thread_id) == before


@pytest.mark.parametrize("action_type", ["no.such.action", NOTE])
async def test_action_from_a_user_message_is_400(
    client_for: Callable[..., ChatKitClient], handled: list[ActionCall[Any]], action_type: str
) -> None:
    """Actions come from widget items: naming a user message as the sender is refused."""
    client = client_for()
    thread_id = await new_thread(client)
    before = await items_of(client, thread_id)
    user_message = next(item for item in before if item["type"] == "user_message")

    params = action_params(thread_id, action_type, {"text": "hi"}, user_message["id"])
    response = await post(client, "threads.custom_action", params)
    json_error(response, 400, "invalid_action")
    assert handled == []
    assert await items_of(client, thread_id) == before


async def test_action_on_another_users_thread_is_404(
    client_for: Callable[..., ChatKitClient], handled: list[ActionCall[Any]]
) -> None:
    """Someone else's thread does not exist for this user, even for a valid action."""
    owner, other = client_for(), client_for()
    thread_id = await new_thread(owner)
    before = await items_of(owner, thread_id)

    response = await post(
        other, "threads.custom_action", action_params(thread_id, NOTE, {"text": "x"})
    )
    json_error(response, 404, "not_found")
    assert handled == []
    assert await items_of(owner, thread_id) == before


async def test_action_naming_a_missing_item_is_404(
    client_for: Callable[..., ChatKitClient], handled: list[ActionCall[Any]]
) -> None:
    """A sender item id that is not in the thread is a 404."""
    client = client_for()
    thread_id = await new_thread(client)
    params = action_params(thread_id, NOTE, {"text": "x"}, item_id="wdg_missing")
    json_error(await post(client, "threads.custom_action", params), 404, "not_found")
    assert handled == []


@pytest.mark.parametrize(
    "payload",
    [{}, {"text": "x", "times": "many"}, {"text": ["not", "text"]}, "a string", [1, 2]],
    ids=["missing-field", "wrong-type", "list-field", "string", "list"],
)
async def test_invalid_payload_is_400(
    client_for: Callable[..., ChatKitClient], handled: list[ActionCall[Any]], payload: Any
) -> None:
    """A payload the handler's model rejects is a 400 naming the action; no handler runs."""
    client = client_for()
    thread_id = await new_thread(client)
    before = await items_of(client, thread_id)

    response = await post(client, "threads.custom_action", action_params(thread_id, NOTE, payload))
    message = json_error(response, 400, "invalid_action")["message"]
    assert "invalid payload" in message and NOTE in message
    assert handled == []
    assert await items_of(client, thread_id) == before


async def test_widget_that_does_not_offer_the_action_is_400(
    client_for: Callable[..., ChatKitClient],
    handled: list[ActionCall[Any]],
    store: PostgresStore,
) -> None:
    """A widget action is accepted only from a widget that carries it."""
    offering_other = card({"type": "Text", "value": "Pick one"}, button(OTHER))
    client, thread_id, widget = await thread_with_widget(client_for, store, offering_other)
    before = await items_of(client, thread_id)

    params = action_params(thread_id, PRESS, {"choice": "a"}, widget.id)
    message = json_error(
        await post(client, "threads.custom_action", params), 400, "invalid_action"
    )["message"]
    assert "offers no" in message
    without_sender = action_params(thread_id, PRESS, {"choice": "a"})
    message = json_error(
        await post(client, "threads.custom_action", without_sender), 400, "invalid_action"
    )["message"]
    assert "must come from a widget" in message
    assert handled == []
    assert await items_of(client, thread_id) == before


# --- threads.custom_action: dispatch --------------------------------------------------------


async def test_registered_action_is_dispatched_to_its_handler(
    client_for: Callable[..., ChatKitClient], handled: list[ActionCall[Any]]
) -> None:
    """A registered action runs its handler with the validated payload; its events stream
    out and the item it finishes is stored."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    thread_id = await new_thread(client)
    before = await items_of(client, thread_id)

    params = action_params(thread_id, NOTE, {"text": "ab", "times": "3"})
    events = await stream(client, "threads.custom_action", params)

    (call,) = handled
    assert call.payload == NotePayload(text="ab", times=3)
    assert call.sender is None
    assert call.thread.id == thread_id
    assert call.context.user.id == user_id
    types = [event["type"] for event in events]
    assert types[-3:] == ["progress_update", "notice", "thread.item.done"], types
    assert "error" not in types
    assert events[-2]["message"] == "noted ab"
    reply = events[-1]["item"]
    assert reply["type"] == "assistant_message" and assistant_text(reply) == "ababab"
    assert await items_of(client, thread_id) == [*before, reply]


@pytest.mark.parametrize(
    "widget",
    [
        card({"type": "Row", "children": [{"type": "Col", "children": [button(PRESS)]}]}),
        card(
            {"type": "Text", "value": "Sure?"}, confirm={"label": "Yes", "action": {"type": PRESS}}
        ),
    ],
    ids=["nested-button", "card-confirm"],
)
async def test_widget_action_is_dispatched_with_its_sender(
    client_for: Callable[..., ChatKitClient],
    handled: list[ActionCall[Any]],
    store: PostgresStore,
    widget: DynamicWidgetRoot,
) -> None:
    """An action a widget offers (however deep, or as a Card's confirm) reaches its handler
    with that widget item as the sender."""
    client, thread_id, item = await thread_with_widget(client_for, store, widget)

    events = await stream(
        client, "threads.custom_action", action_params(thread_id, PRESS, {"choice": "b"}, item.id)
    )

    (call,) = handled
    assert call.sender is not None and call.sender.id == item.id
    assert call.payload == PressPayload(choice="b")
    notices = [event["message"] for event in events if event["type"] == "notice"]
    assert notices == ["pressed b"]


async def test_an_action_is_parsed_once(
    client_for: Callable[..., ChatKitClient],
    handled: list[ActionCall[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The endpoint's check parses the action; the server runs that result, not a new parse."""
    parses: list[str] = []

    def counted(action: Action[str, Any], sender: WidgetItem | None, **kwargs: Any) -> Any:
        parses.append(action.type)
        return parse_action(action, sender, **kwargs)

    monkeypatch.setattr(checks, "parse_action", counted)
    monkeypatch.setattr(server, "parse_action", counted)
    client = client_for()
    thread_id = await new_thread(client)
    await stream(client, "threads.custom_action", action_params(thread_id, NOTE, {"text": "x"}))
    assert parses == [NOTE]
    assert [call.payload for call in handled] == [NotePayload(text="x")]


async def test_sync_actions_without_a_sync_function_are_400(
    client_for: Callable[..., ChatKitClient],
    handled: list[ActionCall[Any]],
    store: PostgresStore,
) -> None:
    """`threads.sync_custom_action` is checked like a streamed action; a handler without a
    `sync` function refuses it (400), and nothing runs."""
    client, thread_id, widget = await thread_with_widget(client_for, store, card(button(PRESS)))
    params = action_params(thread_id, PRESS, {"choice": "a"}, widget.id)
    answer = await post(client, "threads.sync_custom_action", params)
    error = json_error(answer, 400, "invalid_action")
    assert "cannot be sent as a sync action" in error["message"]
    params = action_params(thread_id, PRESS, {"choice": 5}, widget.id)
    json_error(await post(client, "threads.sync_custom_action", params), 400, "invalid_action")
    assert handled == []


# --- offered_actions and parse_action -------------------------------------------------------


def test_offered_actions_finds_every_action_in_the_tree() -> None:
    """Every `...Action` at any depth, and a Card's confirm/cancel `action`, in order."""
    tree = {
        "type": "Card",
        "children": [
            {"type": "Row", "children": [button("a.click"), {"type": "Text", "value": "t"}]},
            {
                "type": "Form",
                "onSubmitAction": {"type": "b.submit"},
                "children": [{"type": "Select", "onChangeAction": {"type": "c.change"}}],
            },
            {
                "type": "ListView",
                "children": [{"type": "ListViewItem", "onClickAction": {"type": "d.item"}}],
            },
        ],
        "confirm": {"label": "OK", "action": {"type": "e.confirm"}},
        "cancel": {"label": "No", "action": {"type": "f.cancel"}},
    }
    assert list(offered_actions(tree)) == [
        "a.click",
        "b.submit",
        "c.change",
        "d.item",
        "e.confirm",
        "f.cancel",
    ]


def test_offered_actions_ignores_what_is_not_an_action() -> None:
    """Empty action slots, action-like data inside payloads and plain values offer nothing."""
    tree = {
        "type": "Card",
        "children": [
            {"type": "Button", "label": "none", "onClickAction": None},
            {"type": "Button", "label": "untyped", "onClickAction": {"payload": {}}},
            button("real", {"nextAction": {"type": "smuggled"}, "action": {"type": "also"}}),
            {"type": "Text", "value": "onClickAction"},
        ],
    }
    assert list(offered_actions(tree)) == ["real"]
    assert list(offered_actions([])) == [] and list(offered_actions("x")) == []


def test_offered_actions_reads_a_real_widget() -> None:
    """Works on a validated widget's dump, as parse_action uses it."""
    widget = card(
        button(PRESS, {"choice": "x"}), confirm={"label": "OK", "action": {"type": OTHER}}
    )
    assert set(offered_actions(widget.model_dump())) == {PRESS, OTHER}


def refused(action: Action[str, Any], sender: WidgetItem | None) -> str:
    """The message of the InvalidActionError (a 400 invalid_action) parse_action raises."""
    with pytest.raises(InvalidActionError) as caught:
        parse_action(action, sender)
    assert (caught.value.status, caught.value.code) == (400, "invalid_action")
    return caught.value.message


def test_parse_action_accepts_registered_actions(handled: list[ActionCall[Any]]) -> None:
    """The handler and the validated payload, for a widget's own action or a free one."""
    sender = widget_item("thr_x", card(button(PRESS)))
    handler, payload = parse_action(Action(type=PRESS, payload={"choice": "c"}), sender)
    assert handler is actions.ACTIONS[PRESS] and payload == PressPayload(choice="c")
    _, default = parse_action(Action(type=PRESS, payload=None), sender)
    assert default == PressPayload()
    handler, note = parse_action(Action(type=NOTE, payload={"text": "t"}), None)
    assert handler is actions.ACTIONS[NOTE] and note == NotePayload(text="t", times=1)
    assert handled == []  # parsing runs no handler


def test_parse_action_refusals(handled: list[ActionCall[Any]]) -> None:
    """Unknown type, a widget action without a widget or from one not offering it, and a bad
    payload each raise InvalidActionError with a message saying which."""
    offering = widget_item("thr_x", card(button(PRESS)))
    not_offering = widget_item("thr_x", card(button(OTHER)))
    assert "unknown action type" in refused(Action(type="nope", payload={}), offering)
    assert "must come from a widget" in refused(Action(type=PRESS, payload={}), None)
    assert "offers no" in refused(Action(type=PRESS, payload={}), not_offering)
    assert "invalid payload" in refused(Action(type=PRESS, payload={"choice": 5}), offering)
    assert "invalid payload" in refused(Action(type=NOTE, payload={}), None)


# --- threads.add_client_tool_output ---------------------------------------------------------


async def test_tool_output_without_pending_call_is_400(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """An output for a thread that awaits none is refused before any stream or model call."""
    client = client_for()
    thread_id = await new_thread(client)
    before, model_calls = await items_of(client, thread_id), len(fake_model.requests)

    params = {"thread_id": thread_id, "result": {"color": "red"}}
    response = await post(client, "threads.add_client_tool_output", params)
    json_error(response, 400, "no_pending_tool_call")
    assert await items_of(client, thread_id) == before
    assert len(fake_model.requests) == model_calls


@pytest.mark.parametrize("case", ["completed", "not-newest"])
async def test_tool_output_needs_the_pending_call_to_be_newest(
    client_for: Callable[..., ChatKitClient], store: PostgresStore, case: str
) -> None:
    """A completed call, or a pending one with a newer item after it, awaits no output."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    thread_id = await new_thread(client)
    context = make_context(user_id)
    await store.add_thread_item(
        thread_id, tool_call(thread_id, "completed" if case == "completed" else "pending"), context
    )
    if case == "not-newest":
        later = AssistantMessageItem(
            id=f"msg_{uuid.uuid4().hex}",
            thread_id=thread_id,
            created_at=datetime.now(UTC),
            content=[AssistantMessageContent(text="later")],
        )
        await store.add_thread_item(thread_id, later, context)
    before = await items_of(client, thread_id)

    params = {"thread_id": thread_id, "result": "x"}
    response = await post(client, "threads.add_client_tool_output", params)
    json_error(response, 400, "no_pending_tool_call")
    assert await items_of(client, thread_id) == before


async def test_tool_output_completes_the_pending_call_and_the_model_answers(
    client_for: Callable[..., ChatKitClient], store: PostgresStore, fake_model: FakeModel
) -> None:
    """The output is stored on the pending call, which becomes completed, and the model
    continues with it (the fake quotes tool outputs)."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    thread_id = await new_thread(client)
    pending = tool_call(thread_id)
    await store.add_thread_item(thread_id, pending, make_context(user_id))
    result = {"color": "teal", "shade": 3}

    events = await stream(
        client, "threads.add_client_tool_output", {"thread_id": thread_id, "result": result}
    )

    assert "error" not in [event["type"] for event in events]
    replies = [
        event["item"]
        for event in events
        if event["type"] == "thread.item.done" and event["item"]["type"] == "assistant_message"
    ]
    assert [assistant_text(reply) for reply in replies] == [
        'Tool said: {"color": "teal", "shade": 3}'
    ]
    stored = await items_of(client, thread_id)
    (call,) = [item for item in stored if item["type"] == "client_tool_call"]
    assert call["id"] == pending.id and call["status"] == "completed"
    assert call["output"] == result
    assert stored[-1]["id"] == replies[0]["id"]
    sent = fake_model.requests[-1]["input"]
    outputs = [item for item in sent if item.get("type") == "function_call_output"]
    assert [item["call_id"] for item in outputs] == [pending.call_id]


async def test_tool_output_on_another_users_thread_is_404(
    client_for: Callable[..., ChatKitClient], store: PostgresStore
) -> None:
    """Another user cannot complete someone's pending call; it stays pending."""
    owner_id = f"user-{uuid.uuid4().hex}"
    owner, other = client_for(owner_id), client_for()
    thread_id = await new_thread(owner)
    await store.add_thread_item(thread_id, tool_call(thread_id), make_context(owner_id))
    before = await items_of(owner, thread_id)

    params = {"thread_id": thread_id, "result": "stolen"}
    json_error(await post(other, "threads.add_client_tool_output", params), 404, "not_found")
    with pytest.raises(ChatKitHTTPError) as caught:
        await stream(other, "threads.add_client_tool_output", params)
    assert caught.value.status == 404
    assert await items_of(owner, thread_id) == before
    assert before[-1]["type"] == "client_tool_call" and before[-1]["status"] == "pending"
