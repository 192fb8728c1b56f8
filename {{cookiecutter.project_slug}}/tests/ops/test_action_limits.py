"""Widget actions count: RATE_LIMIT_ACTIONS_PER_MINUTE (429 with Retry-After), and a handler
that calls the model is metered and held to the daily token budget like a message.

Handlers are registered for a test in `actions.ACTIONS` (the app runs in this process).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from chatkit.types import ThreadStreamEvent
from pydantic import BaseModel

from {{ cookiecutter.project_slug }}.agent import actions
from {{ cookiecutter.project_slug }}.agent.actions import ActionCall, ActionHandler
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text, user_input
from tests.ops.test_limits import retry_after
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import json_error, post, rows
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]
QUIET = "test.quiet"
"""An action whose handler yields nothing."""
ASK = "test.ask"
"""An action whose handler has the agent answer (runs_model=True)."""


class Empty(BaseModel):
    pass


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    async def quiet(call: ActionCall[Empty]) -> AsyncIterator[ThreadStreamEvent]:
        for _ in ():
            yield _

    async def ask(call: ActionCall[Empty]) -> AsyncIterator[ThreadStreamEvent]:
        async for event in call.run_agent():
            yield event

    async def nothing(call: ActionCall[Empty]) -> None:
        return None

    quietly = ActionHandler(quiet, Empty, needs_widget=False, sync=nothing)
    monkeypatch.setitem(actions.ACTIONS, QUIET, quietly)
    monkeypatch.setitem(
        actions.ACTIONS, ASK, ActionHandler(ask, Empty, needs_widget=False, runs_model=True)
    )


def action(thread_id: str, action_type: str) -> JSON:
    return {"thread_id": thread_id, "action": {"type": action_type, "payload": {}}}


async def new_thread(client: ChatKitClient) -> str:
    events = await client.send("hello")
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


async def test_actions_per_minute(
    registered: None,
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
) -> None:
    """Five actions a minute: the sixth, streamed or synchronous, is a 429 with Retry-After;
    messages have a bucket of their own, and another user is not affected."""
    server = app_factory(rate_limit_actions_per_minute=5)
    client = client_for(server=server)
    thread_id = await new_thread(client)
    for _ in range(5):
        response = await post(client, "threads.custom_action", action(thread_id, QUIET))
        assert response.status_code == 200, response.text
    for kind in ("threads.custom_action", "threads.sync_custom_action"):
        response = await post(client, kind, action(thread_id, QUIET))
        json_error(response, 429, "rate_limited")
        assert 1 <= retry_after(response) <= 12  # one action every 12 s refills the bucket
    assert not [e for e in await client.send("a message", thread_id) if e["type"] == "error"]
    other = client_for(server=server)
    other_thread = await new_thread(other)
    response = await post(other, "threads.custom_action", action(other_thread, QUIET))
    assert response.status_code == 200, response.text


async def test_an_action_that_calls_the_model_is_metered_and_budgeted(
    registered: None,
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """Its model calls land in `usage` and the user's day; once the day's budget is used, it
    is refused like a message, while an action that calls no model still runs."""
    # 44: the first action fits (30 spent, its own estimate ~8, and the 2 a finishing answer
    # may still hold), and the day is over once it has run (45).
    server = app_factory(user_daily_tokens=44, rate_limit_actions_per_minute=0)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    thread_id = await new_thread(client)  # answer 15 + title 15
    events = [e async for e in client.stream("threads.custom_action", action(thread_id, ASK))]
    answers = [
        e["item"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    ]
    assert [assistant_text(a) for a in answers] == ["".join(f"tok{i} " for i in range(5))]

    async def recorded() -> bool:
        purposes = await rows(
            database_url, "SELECT purpose FROM usage WHERE user_id = %s ORDER BY 1", user_id
        )
        spent = await rows(
            database_url, "SELECT tokens FROM daily_usage WHERE user_id = %s", user_id
        )
        return purposes == [("answer",), ("answer",), ("title",)] and spent == [(45,)]

    assert await wait_until(recorded)
    response = await post(client, "threads.custom_action", action(thread_id, ASK))
    json_error(response, 429, "daily_budget_exceeded")
    params = {"thread_id": thread_id, "input": user_input("more")}
    json_error(await post(client, "threads.add_user_message", params), 429, "daily_budget_exceeded")
    response = await post(client, "threads.custom_action", action(thread_id, QUIET))
    assert response.status_code == 200, response.text
