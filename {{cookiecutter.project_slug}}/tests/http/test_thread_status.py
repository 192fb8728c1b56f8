"""Thread status over real HTTP: `threads lock|close|unlock` (run as the operator runs them),
and what a locked or closed thread refuses: 409 JSON before any stream, no model call, nothing
stored; reading it still works and shows the status.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ThreadItemDoneEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    WidgetItem,
)
from chatkit.widgets import DynamicWidgetRoot
from pydantic import BaseModel

from {{ cookiecutter.project_slug }}.agent import actions
from {{ cookiecutter.project_slug }}.agent.actions import ActionCall, ActionHandler
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from {{ cookiecutter.project_slug }}.store.thread_status import set_status
from tests.support.app import AppServer
from tests.support.commands import run_cli
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]
ACTION = "test.status_probe"
APIS = ["responses", "chat_completions"]


class Empty(BaseModel):
    pass


@pytest.fixture
def action_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Registers ACTION (sendable with or without a widget); the thread ids it ran for."""
    calls: list[str] = []

    async def probe(call: ActionCall[Empty]) -> AsyncIterator[ThreadStreamEvent]:
        calls.append(call.thread.id)
        reply = AssistantMessageItem(
            id=f"msg_{uuid.uuid4().hex}",
            thread_id=call.thread.id,
            created_at=datetime.now(UTC),
            content=[AssistantMessageContent(text="acted")],
        )
        yield ThreadItemDoneEvent(item=reply)

    monkeypatch.setitem(
        actions.ACTIONS, ACTION, ActionHandler(probe, payload=Empty, needs_widget=False)
    )
    return calls


@pytest.fixture(params=APIS)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param, generate_titles=False)


async def post(client: ChatKitClient, type_: str, params: JSON) -> httpx.Response:
    return await client.http.post(
        client.url, json={"type": type_, "params": params}, headers=client.headers
    )


async def new_thread(client: ChatKitClient) -> tuple[str, list[str]]:
    """A thread with a user message and an answer; its id and its items' ids."""
    events = await client.send("hello")
    thread_id = str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))
    return thread_id, await item_ids(client, thread_id)


async def item_ids(client: ChatKitClient, thread_id: str) -> list[str]:
    page = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    return [item["id"] for item in page["data"]]


async def cli(database_url: str, tmp_path: Path, *args: str) -> Any:
    return await asyncio.to_thread(run_cli, tmp_path, database_url, "threads", *args)


def widget_item(thread_id: str) -> WidgetItem:
    button = {"type": "Button", "label": "Go", "onClickAction": {"type": ACTION}}
    widget = DynamicWidgetRoot.model_validate({"type": "Card", "children": [button]})
    return WidgetItem(
        id=f"wdg_{uuid.uuid4().hex}",
        thread_id=thread_id,
        created_at=datetime.now(UTC),
        widget=widget,
    )


def refusals(thread_id: str, items: list[str], widget_id: str) -> list[tuple[str, JSON]]:
    """Every request that adds to a thread: messages, retries, actions, tool output, answers."""
    action = {"type": ACTION, "payload": {}}
    return [
        ("threads.add_user_message", {"thread_id": thread_id, "input": user_input("more")}),
        ("threads.retry_after_item", {"thread_id": thread_id, "item_id": items[0]}),
        ("threads.custom_action", {"thread_id": thread_id, "item_id": widget_id, "action": action}),
        ("threads.custom_action", {"thread_id": thread_id, "action": action}),
        (
            "threads.sync_custom_action",
            {"thread_id": thread_id, "item_id": widget_id, "action": action},
        ),
        ("threads.add_client_tool_output", {"thread_id": thread_id, "result": {"ok": True}}),
        (
            "threads.add_structured_input",
            {"thread_id": thread_id, "item_id": items[-1], "input": {"answers": {}}},
        ),
    ]


@pytest.mark.parametrize("verb, status", [("lock", "locked"), ("close", "closed")])
async def test_a_locked_or_closed_thread_refuses_new_work_with_409(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
    database_url: str,
    tmp_path: Path,
    action_calls: list[str],
    verb: str,
    status: str,
) -> None:
    """Each request is a 409 JSON error naming the status and the reason, before any stream:
    no model call, no action run, nothing stored; reading the thread still works."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    thread_id, items = await new_thread(client)
    widget = widget_item(thread_id)
    await store.add_thread_item(thread_id, widget, make_context(user_id))
    stored = await item_ids(client, thread_id)

    done = await cli(database_url, tmp_path, verb, thread_id, "--reason", "Under review")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{status} thread {thread_id} (user {user_id})\n"
    model_calls = len(fake_model.requests)

    for type_, params in refusals(thread_id, items, widget.id):
        response = await post(client, type_, params)
        assert response.status_code == 409, (type_, response.text)
        assert response.headers["content-type"].startswith("application/json"), type_
        error = response.json()["error"]
        assert error["code"] == f"thread_{status}", (type_, error)
        assert error["reason"] == "Under review"
        assert error["message"] == f"this thread is {status}: Under review"

    assert len(fake_model.requests) == model_calls
    assert action_calls == []
    assert await item_ids(client, thread_id) == stored
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    assert thread["status"] == {"type": status, "reason": "Under review"}
    assert [i["id"] for i in thread["items"]["data"]] == stored
    listed = await client.request("threads.list", {})
    assert [t["status"]["type"] for t in listed["data"] if t["id"] == thread_id] == [status]


async def test_unlock_makes_the_thread_answer_again(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
    tmp_path: Path,
    action_calls: list[str],
) -> None:
    client = client_for(server=server)
    thread_id, _items = await new_thread(client)
    assert (await cli(database_url, tmp_path, "close", thread_id)).returncode == 0
    refused = await post(
        client, "threads.custom_action", {"thread_id": thread_id, "action": {"type": ACTION}}
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == "this thread is closed"
    assert refused.json()["error"]["reason"] is None

    done = await cli(database_url, tmp_path, "unlock", thread_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == {"type": "active"}

    events = await client.send("back again", thread_id)
    assert any(
        e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message" for e in events
    )
    acted = client.stream(
        "threads.custom_action", {"thread_id": thread_id, "action": {"type": ACTION}}
    )
    assert [e async for e in acted][-1]["type"] == "thread.item.done"
    assert action_calls == [thread_id]
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    assert thread["status"] == {"type": "active"}


async def test_other_threads_and_users_are_not_affected(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    database_url: str,
    tmp_path: Path,
) -> None:
    client = client_for()
    locked, _ = await new_thread(client)
    other, _ = await new_thread(client)
    assert (await cli(database_url, tmp_path, "lock", locked)).returncode == 0
    events = await client.send("still here", other)
    assert events[-1]["type"] != "error"
    assert (await client.request("threads.get_by_id", {"thread_id": other}))["status"] == {
        "type": "active"
    }


async def test_set_status_is_scoped_to_the_context_user(store: PostgresStore) -> None:
    """The function a route or tool calls changes only its user's thread."""
    owner, stranger = make_context(), make_context()
    thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex}", created_at=datetime.now(UTC))
    await store.save_thread(thread, owner)
    with pytest.raises(NotFoundError):
        await set_status(store, thread.id, "locked", "no", stranger)
    changed = await set_status(store, thread.id, "locked", "Moderation", owner)
    assert changed.status.type == "locked"
    loaded = await store.load_thread(thread.id, owner)
    assert loaded.status.model_dump() == {"type": "locked", "reason": "Moderation"}
    await set_status(store, thread.id, "active", "ignored", owner)
    assert (await store.load_thread(thread.id, owner)).status.model_dump() == {"type": "active"}


async def test_cli_errors(database_url: str, fresh_schema_url: str, tmp_path: Path) -> None:
    """A missing thread and a too-long reason are one line each; exit 1 and 2."""
    missing = await cli(database_url, tmp_path, "lock", "thr_missing")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "error: no thread thr_missing\n"
    long = await cli(database_url, tmp_path, "close", "thr_x", "--reason", "x" * 501)
    assert long.returncode == 2 and "over 500 characters" in long.stderr
    unmigrated = await cli(fresh_schema_url, tmp_path, "unlock", "thr_x")
    assert unmigrated.returncode == 1
    assert "no threads table: run `python -m {{ cookiecutter.project_slug }} db upgrade` first" in unmigrated.stderr
