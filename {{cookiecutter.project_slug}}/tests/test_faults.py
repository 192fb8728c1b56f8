"""Faults: the database going away, model faults mid-stream, clients hanging up, and two
instances starting at once. The service answers clearly, loses nothing, leaks nothing and
recovers on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio

from {{ cookiecutter.project_slug }}.client import ChatKitClient, assistant_text, user_input
from {{ cookiecutter.project_slug }}.db import apply_migrations, load_migrations
from {{ cookiecutter.project_slug }}.embedded import start_embedded, stop_embedded

from .fake_openai import FakeModel, FakeOpenAI, Fault
from .fixtures_app import TEST_AUTH_SECRET, AppServer, wait_until

PACKAGE = "{{ cookiecutter.project_slug }}"
JSON = dict[str, Any]
REQUEST_SECONDS = 15.0
"""No request may take longer than this while the database is down (no hangs)."""


def thread_id_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


def error_events(events: list[JSON]) -> list[JSON]:
    return [e for e in events if e["type"] == "error"]


async def items_of(client: ChatKitClient, thread_id: str) -> list[JSON]:
    page = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    return list(page["data"])


# --- (a) the database goes away mid-conversation ------------------------------------------------


class Database:
    """A PostgreSQL of this test's own, that the test stops and starts again."""

    def __init__(self, folder: Path) -> None:
        self.data_dir = folder / "pgdata"
        self.url = ""

    def start(self) -> str:
        self.url = start_embedded(self.data_dir, cleanup_mode="stop")
        return self.url

    def stop(self) -> None:
        stop_embedded(self.data_dir)


@pytest_asyncio.fixture(loop_scope="session")
async def own_database() -> AsyncIterator[Database]:
    folder = Path(tempfile.mkdtemp(prefix="chatkit-faults-pg-"))
    database = Database(folder)
    try:
        await asyncio.to_thread(database.start)
        await apply_migrations(database.url)
        yield database
    finally:
        await asyncio.to_thread(database.stop)
        shutil.rmtree(folder, ignore_errors=True)


async def health(http: httpx.AsyncClient, server: AppServer) -> int:
    return (await http.get(server.url + "/health", timeout=REQUEST_SECONDS)).status_code


async def timed_post(client: ChatKitClient, type_: str, params: JSON) -> httpx.Response:
    """POST a request and read all of it, failing if that takes longer than REQUEST_SECONDS."""
    body = {"type": type_, "params": params}
    async with asyncio.timeout(REQUEST_SECONDS):
        return await client.http.post(client.url, json=body, headers=client.headers)


def check_outage_answer(response: httpx.Response) -> None:
    """While the database is down: a JSON error, or a stream that ends with an error event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [json.loads(line[6:]) for line in response.text.splitlines() if line[:6] == "data: "]
        assert events and events[-1]["type"] == "error", response.text[-300:]
        return
    assert response.status_code >= 500, response.text
    assert isinstance(response.json()["error"]["message"], str)
    assert "Traceback" not in response.text and "psycopg" not in response.text


async def test_database_outage_is_clear_loses_nothing_and_recovers(
    own_database: Database,
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    server = app_factory(database_url=own_database.url, db_pool_max_size=4)
    client = client_for(server=server)
    http = client.http
    first = await client.send("hello before the outage")
    thread_id = thread_id_of(first)
    assert not error_events(first)

    # A turn is streaming when the database goes away.
    fake_model.tokens, fake_model.delay = 40, 0.05
    events: list[JSON] = []
    params = {"thread_id": thread_id, "input": user_input("interrupted turn")}
    async with asyncio.timeout(REQUEST_SECONDS * 2):
        async for event in client.stream("threads.add_user_message", params):
            events.append(event)
            if len(events) == 4:  # the answer has started
                await asyncio.to_thread(own_database.stop)
    assert events[-1]["type"] == "error", "the stream ends with an error event, not a cut"

    # While it is down: /health says 503, every request fails clearly and quickly.
    fake_model.tokens, fake_model.delay = 5, 0.0
    assert await health(http, server) == 503
    for type_, request_params in [
        ("threads.list", {}),
        ("threads.get_by_id", {"thread_id": thread_id}),
        ("threads.create", {"input": user_input("during the outage")}),
        ("threads.add_user_message", {"thread_id": thread_id, "input": user_input("still down")}),
    ]:
        check_outage_answer(await timed_post(client, type_, request_params))

    # It comes back: the same app recovers without a restart.
    await asyncio.to_thread(own_database.start)
    assert await wait_until(lambda: _healthy(http, server), 10), "healthy again within 10 s"
    again = await client.send("after the outage", thread_id)
    assert not error_events(again)

    await assert_nothing_half_written(own_database.url)


async def _healthy(http: httpx.AsyncClient, server: AppServer) -> bool:
    return await health(http, server) == 200


async def assert_nothing_half_written(database_url: str) -> None:
    """Every thread's user messages are whole, and every assistant message is complete:
    each user message is followed by at most one assistant message, with text."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT thread_id, payload FROM thread_items ORDER BY thread_id, created_at, seq"
        )
        rows = await cursor.fetchall()
    by_thread: dict[str, list[JSON]] = {}
    for thread_id, payload in rows:
        by_thread.setdefault(thread_id, []).append(payload)
    assert by_thread, "the conversation was stored"
    for thread_id, items in by_thread.items():
        kinds = [item["type"] for item in items if item["type"] != "sdk_hidden_context"]
        assert kinds[0] == "user_message", (thread_id, kinds)
        for before, after in zip(kinds, kinds[1:], strict=False):
            assert (before, after) != ("assistant_message", "assistant_message"), kinds
        for item in items:
            if item["type"] == "assistant_message":
                assert assistant_text(item) in COMPLETE_ANSWERS, (thread_id, item)


COMPLETE_ANSWERS = {"".join(f"tok{i} " for i in range(n)) for n in (5, 40)}
