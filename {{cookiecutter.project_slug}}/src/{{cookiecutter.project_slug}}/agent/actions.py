"""Widget actions: each type's handler and payload model, in ACTIONS, checked and parsed by the
endpoint before anything runs (400 otherwise). A handler yields ChatKit events (hidden context
with `call.hidden_context`, the agent's answer with `call.run_agent` when `runs_model=True`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypeVar

from chatkit.actions import Action
{%- if cookiecutter.examples %}
from chatkit.server import stream_widget
{%- endif %}
from chatkit.store import StoreItemType
from chatkit.types import (
{%- if cookiecutter.examples %}
    ClientEffectEvent,
{%- endif %}
    HiddenContextItem,
    ThreadItem,
    ThreadItemDoneEvent,
{%- if cookiecutter.examples %}
    ThreadItemReplacedEvent,
{%- endif %}
    ThreadMetadata,
    ThreadStreamEvent,
    WidgetItem,
)
{%- if cookiecutter.examples %}
from pydantic import BaseModel, ValidationError, field_validator
{%- else %}
from pydantic import BaseModel, ValidationError
{%- endif %}

from ..context import RequestContext
from ..errors import MAX_EXCERPT_CHARS, AppError, excerpt
{%- if cookiecutter.examples %}
from .tools import UnknownTimeZoneError, now_in
from .widgets import (
    CLOCK_ASK,
    CLOCK_REFRESH,
    CLOCK_REFRESHED,
    CLOCK_SHOW,
    clock_widget,
    describe_day,
)
{%- endif %}

P = TypeVar("P", bound=BaseModel)


class InvalidActionError(AppError):
    """An action this server cannot run (answered with 400 before any stream)."""

    code = "invalid_action"


@dataclass(frozen=True, slots=True)
class ActionCall(Generic[P]):
    """What a handler gets: the thread, the validated payload, the widget clicked, the user,
    and two services of the server (handlers import nothing from chat/)."""

    thread: ThreadMetadata
    payload: P
    sender: WidgetItem | None
    context: RequestContext
    new_id: Callable[[StoreItemType], str]
    """A new id from the store for an item of that kind (`new_id("message")`)."""
    run_agent: Callable[[], AsyncIterator[ThreadStreamEvent]]
    """The agent's answer to the thread as it is now, hidden context included, as events."""

    def hidden_context(self, text: str) -> ThreadItemDoneEvent:
        """An item for the model only: yield it and the SDK stores it without sending it;
        items.list never shows it, and every later model call reads it."""
        item = HiddenContextItem(
            id=self.new_id("message"),
            thread_id=self.thread.id,
            created_at=datetime.now(UTC),
            content=text,
        )
        return ThreadItemDoneEvent(item=item)


Handler = Callable[[ActionCall[Any]], AsyncIterator[ThreadStreamEvent]]
SyncHandler = Callable[[ActionCall[Any]], Awaitable[ThreadItem | None]]


@dataclass(frozen=True, slots=True)
class ActionHandler:
    """One action type: its handler, its payload model, whether a widget must send it,
    whether it calls the model, and what it does as a sync action (None: refused)."""

    handle: Handler
    payload: type[BaseModel]
    needs_widget: bool = True
    runs_model: bool = False
    """The handler calls the model: the daily token budget applies (ops/limits.py)."""
    sync: SyncHandler | None = None
    """For `threads.sync_custom_action`: returns the updated item (stored) or None."""


class CheckedAction(NamedTuple):
    """An action as the endpoint checked it: its handler and its validated payload."""

    handler: ActionHandler
    payload: BaseModel
{%- if cookiecutter.examples %}


# --- example: the clock's buttons, and a clock sent without a widget ---------------------------


class ClockPayload(BaseModel):
    """The payload of the clock actions: the clock's time zone."""

    timezone: str

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        now_in(value)  # raises UnknownTimeZoneError, a ValueError: the payload is invalid
        return value


def clock_now(timezone: str) -> datetime:
    """The time in a zone the payload check accepted (InvalidActionError if the zone data
    changed since)."""
    try:
        return now_in(timezone)
    except UnknownTimeZoneError as exc:
        raise InvalidActionError(f"unknown time zone {excerpt(timezone)}") from exc


def refreshed(call: ActionCall[ClockPayload]) -> tuple[WidgetItem, datetime]:
    """The clicked clock item showing the current time (the same item id)."""
    assert call.sender is not None  # needs_widget: parse_action checked it
    timezone = call.payload.timezone
    now = clock_now(timezone)
    widget = clock_widget(timezone, now)
    copy_text = f"{now:%H:%M} in {timezone}"
    return call.sender.model_copy(update={"widget": widget, "copy_text": copy_text}), now


async def refresh_clock(call: ActionCall[ClockPayload]) -> AsyncIterator[ThreadStreamEvent]:
    """Redraw the clock with the current time, tell the model, and tell the page (effect)."""
    item, now = refreshed(call)
    timezone = call.payload.timezone
    yield ThreadItemReplacedEvent(item=item)
    yield call.hidden_context(
        f'<CLOCK_REFRESHED zone="{timezone}">The user refreshed the clock; it shows '
        f"{now:%H:%M}, {describe_day(now)}.</CLOCK_REFRESHED>"
    )
    yield ClientEffectEvent(name=CLOCK_REFRESHED, data={"timezone": timezone})


async def refresh_clock_sync(call: ActionCall[ClockPayload]) -> WidgetItem:
    """Refresh as a sync action: the redrawn clock, which the server stores and returns."""
    item, _now = refreshed(call)
    return item


async def ask_about_clock(call: ActionCall[ClockPayload]) -> AsyncIterator[ThreadStreamEvent]:
    """The "Ask about this time" button: say what the user asked, then the agent answers."""
    timezone = call.payload.timezone
    now = clock_now(timezone)
    yield call.hidden_context(
        f'<CLOCK_QUESTION zone="{timezone}">The user pressed "Ask about this time" on the '
        f"clock showing {now:%H:%M}, {describe_day(now)}. Tell them briefly what that time "
        "means there: day or night, business hours, the offset from UTC.</CLOCK_QUESTION>"
    )
    async for event in call.run_agent():
        yield event


async def show_clock(call: ActionCall[ClockPayload]) -> AsyncIterator[ThreadStreamEvent]:
    """A new clock for a zone, asked for without a widget (the page's `sendCustomAction`)."""
    timezone = call.payload.timezone
    now = clock_now(timezone)
    widget = clock_widget(timezone, now)
    copy_text = f"{now:%H:%M} in {timezone}"
    async for event in stream_widget(call.thread, widget, copy_text, generate_id=call.new_id):
        yield event
{%- endif %}


{% if cookiecutter.examples -%}
ACTIONS: dict[str, ActionHandler] = {
    CLOCK_REFRESH: ActionHandler(refresh_clock, payload=ClockPayload, sync=refresh_clock_sync),
    CLOCK_ASK: ActionHandler(ask_about_clock, payload=ClockPayload, runs_model=True),
    CLOCK_SHOW: ActionHandler(show_clock, payload=ClockPayload, needs_widget=False),
}
{%- else -%}
ACTIONS: dict[str, ActionHandler] = {}
{%- endif %}
"""Every action type this server handles."""


def parse_action(
    action: Action[str, Any], sender: WidgetItem | None, *, sync: bool = False
) -> CheckedAction:
    """The handler and validated payload for `action` (sent as a sync action if `sync`), or
    InvalidActionError (a 400)."""
    handler, name = ACTIONS.get(action.type), excerpt(action.type)
    if handler is None:
        raise InvalidActionError(f"unknown action type {name}")
    if sync and handler.sync is None:
        raise InvalidActionError(f"action {name} cannot be sent as a sync action")
    if handler.needs_widget:
        if sender is None:
            raise InvalidActionError(f"action {name} must come from a widget")
        if action.type not in set(offered_actions(sender.widget.model_dump())):
            raise InvalidActionError(f"that widget offers no {name} action")
    try:
        payload = handler.payload.model_validate(action.payload or {})
    except ValidationError as exc:
        errors = exc.errors(include_input=False)[:3]
        problems = "; ".join(error["msg"][:MAX_EXCERPT_CHARS] for error in errors)
        raise InvalidActionError(f"invalid payload for {name}: {problems}") from exc
    return CheckedAction(handler, payload)


def offered_actions(node: Any) -> Iterator[str]:
    """The action types a widget's components carry (a client may only send those): every
    `on...Action` (Button, Form, inputs) and the `action` of a Card's confirm/cancel."""
    if isinstance(node, dict):
        for key, value in node.items():
            is_action = key == "action" or key.endswith("Action")
            if is_action and isinstance(value, dict) and "type" in value:
                yield str(value["type"])
            else:
                yield from offered_actions(value)
    elif isinstance(node, list):
        for value in node:
            yield from offered_actions(value)
