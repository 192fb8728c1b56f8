"""Usage accounting: one `usage` row per model call, the user's day in `daily_usage`, and
`usage report`.

The fake model reports 10 input and 5 output tokens for every Responses call (the streamed
answer and the title alike). Report tests get an empty schema of their own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest_asyncio

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store.db import apply_migrations
from {{ cookiecutter.project_slug }}.store.limit_rows import FINISH_TURN
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from {{ cookiecutter.project_slug }}.store.usage_rows import usage_report
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import rows
from tests.support.commands import run_cli
from tests.support.fake_openai import FakeModel

PACKAGE = "{{ cookiecutter.project_slug }}"

Row = tuple[Any, ...]


USAGE = (
    "SELECT thread_id, model, purpose, input_tokens, output_tokens FROM usage"
    " WHERE user_id = %s ORDER BY created_at, turn_id, call"
)


async def usage_of(url: str, user_id: str, calls: int) -> list[Row]:
    """(thread_id, model, purpose, input, output) of the user's calls, in call order, once
    there are `calls` of them (a turn's are written just after its response has ended)."""

    async def enough() -> list[Row] | None:
        found = await rows(url, USAGE, user_id)
        return found if len(found) >= calls else None

    found = await wait_until(enough)
    return list(found) if found else await rows(url, USAGE, user_id)


async def test_every_model_call_of_a_turn_is_recorded(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """A new thread costs the answer and the title; the next turn its answer only; the
    user's day adds them up."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    events = await client.send("hello")
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    await client.send("again", thread_id)

    recorded = await usage_of(database_url, user_id, 3)
    answer = (thread_id, "test-model", "answer", 10, 5)
    title = (thread_id, "test-model", "title", 10, 5)
    assert sorted(recorded[:2]) == [answer, title] and recorded[2:] == [answer]
    day = datetime.now(UTC).date()
    daily = await rows(
        database_url, "SELECT day, tokens FROM daily_usage WHERE user_id = %s", user_id
    )
    assert daily == [(day, 45)]


async def test_chat_completions_usage_is_recorded_too(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """Chat Completions streams report usage only when asked: the app asks."""
    server = app_factory(openai_api="chat_completions", generate_titles=False)
    user_id = f"user-{uuid.uuid4().hex}"
    await client_for(user_id, server=server).send("hello")
    body = [b for b in fake_model.requests if b.get("stream")][-1]
    assert body["stream_options"] == {"include_usage": True}
    recorded = await usage_of(database_url, user_id, 1)
    assert [(purpose, i, o) for _thread, _model, purpose, i, o in recorded] == [("answer", 10, 5)]


async def test_finishing_a_turn_twice_counts_it_once(
    store: PostgresStore, database_url: str
) -> None:
    """The release-and-record statement is safe to repeat (a retry on a dead connection)."""
    user_id = f"user-{uuid.uuid4().hex}"
    params = {
        "lease": uuid.uuid4().hex,
        "user": user_id,
        "thread": "thr_x",
        "models": ["m", "m"],
        "purposes": ["answer", "title"],
        "inputs": [100, 7],
        "outputs": [20, 3],
        "tokens": 130,
    }
    await store.execute(FINISH_TURN, params)
    await store.execute(FINISH_TURN, params)
    assert len(await rows(database_url, USAGE, user_id)) == 2
    assert await rows(
        database_url, "SELECT tokens FROM daily_usage WHERE user_id = %s", user_id
    ) == [(130,)]


# --- the report --------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def own_db(fresh_schema_url: str) -> AsyncIterator[str]:
    """An empty migrated schema holding three users' calls over two days and two models."""
    await apply_migrations(fresh_schema_url)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    calls = [
        ("t1", 1, "alice", "m-large", "answer", 1000, 200, yesterday),
        ("t1", 2, "alice", "m-large", "title", 50, 5, yesterday),
        ("t2", 1, "alice", "m-large", "answer", 2000, 300, datetime.now(UTC)),
        ("t3", 1, "bob", "m-small", "answer", 400, 100, datetime.now(UTC)),
        ("t4", 1, "carol", "m-small", "answer", 10, 1, datetime.now(UTC)),
    ]
    async with await psycopg.AsyncConnection.connect(fresh_schema_url, autocommit=True) as conn:
        for call in calls:
            await conn.execute(
                "INSERT INTO usage (turn_id, call, user_id, thread_id, model, purpose,"
                " input_tokens, output_tokens, created_at)"
                " VALUES (%s, %s, %s, 'thr', %s, %s, %s, %s, %s)",
                call,
            )
    yield fresh_schema_url


async def test_report_sums_by_user_model_and_day(own_db: str) -> None:
    by_user = await usage_report(own_db, None, "user")
    assert [(r.key, r.turns, r.calls, r.input_tokens, r.output_tokens) for r in by_user] == [
        ("alice", 2, 3, 3050, 505),
        ("bob", 1, 1, 400, 100),
        ("carol", 1, 1, 10, 1),
    ]
    by_model = await usage_report(own_db, None, "model")
    assert [(r.key, r.total_tokens) for r in by_model] == [("m-large", 3555), ("m-small", 511)]
    today, yesterday = datetime.now(UTC).date(), (datetime.now(UTC) - timedelta(days=1)).date()
    by_day = await usage_report(own_db, None, "day")
    assert [(r.key, r.total_tokens) for r in by_day] == [
        (today.isoformat(), 2811),
        (yesterday.isoformat(), 1255),
    ]
    since_today = await usage_report(own_db, datetime.now(UTC) - timedelta(hours=1), "user")
    assert [(r.key, r.calls) for r in since_today] == [("alice", 1), ("bob", 1), ("carol", 1)]


async def test_cli_report_prints_a_table_or_json(own_db: str, tmp_path: Path) -> None:
    table = await asyncio.to_thread(run_cli, tmp_path, own_db, "usage", "report", "--by", "model")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "model",
        "turns",
        "model",
        "calls",
        "input",
        "tokens",
        "output",
        "tokens",
        "total",
        "tokens",
    ]
    assert lines[2].split() == ["m-large", "2", "3", "3,050", "505", "3,555"]
    assert lines[3].split() == ["m-small", "2", "2", "410", "101", "511"]
    assert lines[-1].split() == ["total", "4", "5", "3,460", "606", "4,066"]

    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    done = await asyncio.to_thread(
        run_cli, tmp_path, own_db, "usage", "report", "--since", since, "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["by"] == "user"
    assert [(r["key"], r["total_tokens"]) for r in report["rows"]] == [
        ("alice", 2300),
        ("bob", 500),
        ("carol", 11),
    ]


async def test_cli_report_without_the_table_says_to_upgrade(
    fresh_schema_url: str, tmp_path: Path
) -> None:
    done = await asyncio.to_thread(run_cli, tmp_path, fresh_schema_url, "usage", "report")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: no usage table: run `python -m {PACKAGE} db upgrade` first\n"
