"""RETENTION_DAYS: `db prune` deletes threads nobody wrote in for that long, with their items,
attachments (bytes too) and feedback, in batches that skip rows in use; 0 keeps everything."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    ThreadMetadata,
)

from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from {{ cookiecutter.project_slug }}.store.pruning import prune_expired_threads
from tests.support.commands import run_cli
from tests.support.db import make_context

DAY = timedelta(days=1)


async def rows(url: str, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def make_thread(
    store: PostgresStore, user: str, created_days_ago: int, item_days_ago: list[int]
) -> str:
    """A thread of `user` created that long ago, with an item per age given; the first item
    carries feedback and the thread an attachment with bytes."""
    context = make_context(user)
    now = datetime.now(UTC)
    thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex}", created_at=now - created_days_ago * DAY)
    await store.save_thread(thread, context)
    for n, age in enumerate(item_days_ago):
        item = AssistantMessageItem(
            id=f"msg_{n}",
            thread_id=thread.id,
            created_at=now - age * DAY,
            content=[AssistantMessageContent(text=f"{age} days ago")],
        )
        await store.add_thread_item(thread.id, item, context)
    if item_days_ago:
        await store.save_feedback(thread.id, ["msg_0"], "positive", context)
    attachment = FileAttachment(
        id=f"atc_{uuid.uuid4().hex}", name="f.txt", mime_type="text/plain", thread_id=thread.id
    )
    await store.save_attachment(attachment, context)
    await store.save_attachment_content(attachment.id, b"bytes", context)
    return thread.id


async def threads_of_every_age(store: PostgresStore) -> dict[str, list[str]]:
    made: dict[str, list[str]] = {"expired": [], "kept": []}
    for user in ("alice", "bob"):
        made["expired"].append(await make_thread(store, user, 40, [40, 35]))
        made["expired"].append(await make_thread(store, user, 31, []))  # never written in
        made["kept"].append(await make_thread(store, user, 90, [90, 2]))  # a recent item
        made["kept"].append(await make_thread(store, user, 1, [1]))
        made["kept"].append(await make_thread(store, user, 29, [29]))
    return made


async def left(url: str) -> dict[str, set[str]]:
    """The thread ids each table still refers to."""
    queries = {
        "threads": "SELECT id FROM threads",
        "items": "SELECT DISTINCT thread_id FROM thread_items",
        "feedback": "SELECT DISTINCT thread_id FROM feedback",
        "attachments": "SELECT thread_id FROM attachments",
        "contents": "SELECT a.thread_id FROM attachment_contents AS c"
        " JOIN attachments AS a ON a.id = c.attachment_id",
    }
    return {name: {r[0] for r in await rows(url, query)} for name, query in queries.items()}


async def test_db_prune_deletes_expired_threads_with_everything_in_them(
    migrated_schema: tuple[str, PostgresStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store = migrated_schema
    made = await threads_of_every_age(store)
    before = await left(url)
    assert before["threads"] == set(made["expired"]) | set(made["kept"])
    assert before["contents"] == before["threads"]

    monkeypatch.setenv("RETENTION_DAYS", "30")
    done = await asyncio.to_thread(run_cli, tmp_path, url, "db", "prune")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "removed 0 unattached attachments older than 24 hours",
        "removed 4 threads with nothing new for 30 days",
    ]
    after = await left(url)
    kept = set(made["kept"])
    assert after["threads"] == kept
    assert after["attachments"] == after["contents"] == kept
    assert after["items"] == after["feedback"] == kept
    again = await asyncio.to_thread(run_cli, tmp_path, url, "db", "prune", "--json")
    assert json.loads(again.stdout) == {
        "removed": {"attachments": 0, "threads": 0},
        "orphan_hours": 24,
        "retention_days": 30,
    }


async def test_retention_days_0_keeps_every_thread(
    migrated_schema: tuple[str, PostgresStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, store = migrated_schema
    made = await threads_of_every_age(store)
    monkeypatch.delenv("RETENTION_DAYS", raising=False)
    done = await asyncio.to_thread(run_cli, tmp_path, url, "db", "prune")
    assert done.stdout == "removed 0 unattached attachments older than 24 hours\n"
    assert (await left(url))["threads"] == set(made["expired"]) | set(made["kept"])


async def test_batches_skip_threads_in_use(migrated_schema: tuple[str, PostgresStore]) -> None:
    """A thread another transaction holds (being written) is skipped, not waited for; the
    next run takes it. Batches of one reach the same end."""
    url, store = migrated_schema
    made = await threads_of_every_age(store)
    busy = made["expired"][0]
    async with await psycopg.AsyncConnection.connect(url) as holder:
        await holder.execute("SELECT 1 FROM threads WHERE id = %s FOR UPDATE", (busy,))
        removed = await asyncio.wait_for(prune_expired_threads(url, 30, batch_size=1), 10)
        assert removed == len(made["expired"]) - 1
        await holder.rollback()
    assert await prune_expired_threads(url, 30, batch_size=1) == 1
    assert (await left(url))["threads"] == set(made["kept"])
