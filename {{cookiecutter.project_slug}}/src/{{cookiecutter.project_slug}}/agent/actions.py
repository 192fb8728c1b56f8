"""Widget actions: each action type's handler and payload model, in ACTIONS. The endpoint
checks and parses an action before any stream starts (400 when it is not one of these);
`ChatServer.action` runs the handler, which yields ChatKit events (README, "Build on it"). A
handler that calls the model sets `calls_model=True` and yields from `call.answer()`: metered
and budgeted like a message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chatkit.actions import Action
{%- if cookiecutter.examples %}
from chatkit.types import ThreadItemReplacedEvent, ThreadMetadata, ThreadStreamEvent, WidgetItem
{%- else %}
from chatkit.types import ThreadMetadata, ThreadStreamEvent, WidgetItem
{%- endif %}
{%- if cookiecutter.examples %}
from pydantic import BaseModel, ValidationError, field_validator
{%- else %}
from pydantic import BaseModel, ValidationError
{%- endif %}

from ..context import RequestContext
from ..errors import MAX_EXCERPT_CHARS, AppError, excerpt
{%- if cookiecutter.examples %}
from .tools import UnknownTimeZoneError, now_in
from .widgets import CLOCK_REFRESH, clock_widget
{%- endif %}

P = TypeVar("P", bound=BaseModel)


class InvalidActionError(AppError):
    """An action this server cannot run (answered with 400 before any stream)."""

    code = "invalid_action"


@dataclass(frozen=True, slots=True)
class ActionCall(Generic[P]):
    """What a handler gets: the thread, the validated payload, the widget clicked, the user."""

    thread: ThreadMetadata
    payload: P
    sender: WidgetItem | None
    context: RequestContext
    answer: Callable[[], AsyncIterator[ThreadStreamEvent]] | None = None
    """The agent's answer to the thread (for handlers with `calls_model=True`)."""


Handler = Callable[[ActionCall[Any]], AsyncIterator[ThreadStreamEvent]]


@dataclass(frozen=True, slots=True)
class ActionHandler:
    """One action type: its handler, its payload model, whether a widget must send it, and
    whether the handler calls the model (then the daily token budget applies)."""

    handle: Handler
    payload: type[BaseModel]
    needs_widget: bool = True
    calls_model: bool = False
{%- if cookiecutter.examples %}


# --- example: the clock widget's Refresh button ------------------------------------------------


class ClockRefresh(BaseModel):
    """The payload of `clock.refresh`: the clock's time zone."""

    timezone: str

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        now_in(value)  # raises UnknownTimeZoneError, a ValueError: the payload is invalid
        return value


async def refresh_clock(call: ActionCall[ClockRefresh]) -> AsyncIterator[ThreadStreamEvent]:
    """Show the current time on the clock that was clicked (the same item, updated)."""
    assert call.sender is not None  # needs_widget: parse_action checked it
    timezone = call.payload.timezone
    try:
        now = now_in(timezone)
    except UnknownTimeZoneError as exc:  # checked already; the zone data changed since
        raise InvalidActionError(f"unknown time zone {excerpt(timezone)}") from exc
    refreshed = call.sender.model_copy(
        update={"widget": clock_widget(timezone, now), "copy_text": f"{now:%H:%M} in {timezone}"}
    )
    yield ThreadItemReplacedEvent(item=refreshed)
{%- endif %}


{% if cookiecutter.examples -%}
ACTIONS: dict[str, ActionHandler] = {
    CLOCK_REFRESH: ActionHandler(refresh_clock, payload=ClockRefresh),
}
{%- else -%}
ACTIONS: dict[str, ActionHandler] = {}
{%- endif %}
"""Every action type this server handles."""


def parse_action(
    action: Action[str, Any], sender: WidgetItem | None
) -> tuple[ActionHandler, BaseModel]:
    """The handler and validated payload for `action`, or InvalidActionError (a 400)."""
    handler, name = ACTIONS.get(action.type), excerpt(action.type)
    if handler is None:
        raise InvalidActionError(f"unknown action type {name}")
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
    return handler, payload


def calls_model(action_type: str) -> bool:
    """Whether the handler of `action_type` calls the model (False for unknown types)."""
    handler = ACTIONS.get(action_type)
    return handler is not None and handler.calls_model


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
