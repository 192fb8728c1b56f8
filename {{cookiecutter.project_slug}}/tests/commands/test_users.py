"""`users export` and `users delete`, run as the operator runs them, on data made over real
HTTP (messages, attachments, feedback, dictation) by two users; and the rule that every table
of the schema is covered (a new table without one fails here).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pty
import stat
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from {{ cookiecutter.project_slug }}.store.user_rows import CASCADED, EXEMPT, export_user, user_tables
from tests.support.app import AppServer, wait_until
from tests.support.commands import run_cli

JSON = dict[str, Any]
KNOWN_TABLES = {
    "threads",
    "thread_items",
    "attachments",
    "attachment_contents",
    "feedback",
    "usage",
    "daily_usage",
    "user_limits",
}
"""Tables the fixture fills for each user (a table added later is covered by the rule test)."""
APIS = ["responses", "chat_completions"]


async def rows(url: str, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def counts_of(url: str, user_id: str) -> dict[str, int]:
    """The user's rows in every table (by user_id, or through the CASCADED rule)."""
    found: dict[str, int] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for table in await user_tables(conn):
            query = psycopg.sql.SQL("SELECT count(*) FROM {} WHERE user_id = %s")
            cursor = await conn.execute(query.format(psycopg.sql.Identifier(table)), (user_id,))
            found[table] = int((await cursor.fetchone() or (0,))[0])
        for table, count in CASCADED.items():
            cursor = await conn.execute(count, {"user": user_id})
            found[table] = int((await cursor.fetchone() or (0,))[0])
    return found


@dataclass
class UserData:
    """What one user made over HTTP."""

    user_id: str
    threads: list[str] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)


async def make_user_data(server: AppServer, client: ChatKitClient, user_id: str) -> UserData:
    """Two threads (one with an attachment), an orphan upload, feedback and a dictation."""
    made = UserData(user_id)
    for name in ("sent.txt", "orphan.txt"):
        content = f"{name} of {user_id} ".encode() * 3
        async with httpx.AsyncClient() as http:
            response = await http.post(
                server.url + "/attachments",
                files={"file": (name, content, "text/plain")},
                headers=client.headers,
            )
        assert response.status_code == 200, response.text
        made.uploads[response.json()["id"]] = content
    sent = next(iter(made.uploads))
    for text, attachments in (("first", [sent]), ("second", [])):
        events = await client.send(text, attachments=attachments)
        thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
        await client.send("more", thread_id)
        made.threads.append(thread_id)
    page = await client.request("items.list", {"thread_id": made.threads[0], "order": "asc"})
    answer = next(i["id"] for i in page["data"] if i["type"] == "assistant_message")
    feedback = {"thread_id": made.threads[0], "item_ids": [answer], "kind": "positive"}
    await client.request("items.feedback", feedback)
    audio = {"audio_base64": base64.b64encode(b"\x01" * 1200).decode(), "mime_type": "audio/webm"}
    assert (await client.request("input.transcribe", audio))["text"]
    return made


@pytest.fixture(params=APIS)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param)


async def two_users(
    server: AppServer, client_for: Callable[..., ChatKitClient], database_url: str
) -> tuple[UserData, UserData]:
    users = []
    for _ in range(2):
        user_id = f"user-{uuid.uuid4().hex}"
        users.append(await make_user_data(server, client_for(user_id, server=server), user_id))

    async def usage_written() -> bool:  # a turn's usage lands just after its response ends
        answers = "SELECT count(*) FROM usage WHERE user_id = %s AND purpose = 'answer'"
        found = [(await rows(database_url, answers, (u.user_id,)))[0][0] for u in users]
        return all(n >= 4 for n in found)

    assert await wait_until(usage_written)
    return users[0], users[1]


# --- the rule ----------------------------------------------------------------------------------


async def test_every_table_has_a_rule(migrated_schema: tuple[str, PostgresStore]) -> None:
    """Every table of the migrated schema holds user rows by `user_id`, or is listed as
    reached by a cascade, or as exempt. Add a table without `user_id`: list it, or this fails."""
    url, _store = migrated_schema
    tables = await rows(
        url,
        "SELECT t.table_name, bool_or(c.column_name = 'user_id')"
        " FROM information_schema.tables AS t JOIN information_schema.columns AS c"
        " USING (table_schema, table_name)"
        " WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE' GROUP BY 1",
    )
    assert {name for name, _ in tables} >= KNOWN_TABLES | set(EXEMPT)
    without_rule = [n for n, has in tables if not has and n not in CASCADED and n not in EXEMPT]
    assert without_rule == [], f"tables with no user-data rule: {without_rule}"
    assert set(CASCADED) <= {name for name, has in tables if not has}
    async with await psycopg.AsyncConnection.connect(url) as conn:
        order = await user_tables(conn)
    assert order.index("feedback") < order.index("threads")  # referencing tables go first
    assert order.index("attachments") < order.index("threads")


async def test_a_table_without_a_rule_stops_both_commands(
    migrated_schema: tuple[str, PostgresStore], tmp_path: Path
) -> None:
    url, _store = migrated_schema
    await rows(url, "CREATE TABLE notes (id text PRIMARY KEY, body text)")
    for args in (("delete", "alice", "--yes"), ("export", "alice")):
        done = await asyncio.to_thread(run_cli, tmp_path, url, "users", *args)
        assert (done.returncode, done.stdout) == (1, ""), done.stderr
        assert "no rule for the user's rows in notes" in done.stderr
    await rows(url, "ALTER TABLE notes ADD COLUMN user_id text")
    await rows(url, "INSERT INTO notes VALUES ('n1', 'hi', 'alice'), ('n2', 'yo', 'bob')")
    exported = await asyncio.to_thread(run_cli, tmp_path, url, "users", "export", "alice")
    assert json.loads(exported.stdout)["notes"] == [{"id": "n1", "body": "hi", "user_id": "alice"}]
    done = await asyncio.to_thread(run_cli, tmp_path, url, "users", "delete", "alice", "--yes")
    assert done.stdout == "deleted user alice: 1 notes\n"
    assert await rows(url, "SELECT id FROM notes") == [("n2",)]


# --- delete ------------------------------------------------------------------------------------


async def test_delete_removes_every_row_of_the_user_and_nothing_else(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    database_url: str,
    tmp_path: Path,
) -> None:
    alice, bob = await two_users(server, client_for, database_url)
    before = await counts_of(database_url, alice.user_id)
    assert {t for t, n in before.items() if n} >= KNOWN_TABLES, before  # the test covers them
    bob_before = await counts_of(database_url, bob.user_id)

    done = await asyncio.to_thread(
        run_cli, tmp_path, database_url, "users", "delete", alice.user_id, "--yes", "--json"
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"user_id": alice.user_id, "deleted": before}
    assert set(await counts_of(database_url, alice.user_id)).issuperset(KNOWN_TABLES)
    assert not any((await counts_of(database_url, alice.user_id)).values())
    assert await counts_of(database_url, bob.user_id) == bob_before
    other = client_for(bob.user_id, server=server)
    assert (await other.request("threads.get_by_id", {"thread_id": bob.threads[0]}))["id"]
    gone = client_for(alice.user_id, server=server)
    assert (await gone.request("threads.list", {}))["data"] == []

    again = await asyncio.to_thread(
        run_cli, tmp_path, database_url, "users", "delete", alice.user_id, "--yes"
    )
    assert (
        again.returncode == 0
        and again.stdout == f"user {alice.user_id} has no rows: nothing deleted\n"
    )


async def test_delete_without_yes_asks_and_refuses_without_a_terminal(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    database_url: str,
    tmp_path: Path,
) -> None:
    user_id = f"user-{uuid.uuid4().hex}"
    await client_for(user_id).send("hello")
    refused = await asyncio.to_thread(run_cli, tmp_path, database_url, "users", "delete", user_id)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith(f"error: refusing to delete user {user_id} without")
    assert "--yes" in refused.stderr

    for answer, code, said in (
        ("someone-else\n", 1, "not confirmed: nothing deleted"),
        (f"{user_id}\n", 0, "deleted user"),
    ):
        leader, follower = pty.openpty()
        try:
            os.write(leader, answer.encode())
            done = await asyncio.to_thread(
                run_cli, tmp_path, database_url, "users", "delete", user_id, stdin=follower
            )
        finally:
            os.close(leader)
            os.close(follower)
        assert done.returncode == code, done.stderr
        assert "type the user id to confirm" in done.stderr
        assert "1 threads" in done.stderr  # what would go, before asking
        assert said in done.stderr + done.stdout
        left = (await counts_of(database_url, user_id))["threads"]
        assert left == (1 if code else 0)


# --- export ------------------------------------------------------------------------------------


async def test_export_holds_everything_of_the_user_in_order(
    database_url: str,
    tmp_path: Path,
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
) -> None:
    alice, bob = await two_users(server, client_for, database_url)
    client = client_for(alice.user_id, server=server)

    done = await asyncio.to_thread(
        run_cli, tmp_path, database_url, "users", "export", alice.user_id
    )

    assert done.returncode == 0, done.stderr
    assert bob.user_id not in done.stdout and not any(t in done.stdout for t in bob.threads)
    document = json.loads(done.stdout)
    assert document["user_id"] == alice.user_id
    assert [t["thread"]["id"] for t in document["threads"]] == alice.threads
    for exported in document["threads"]:
        page = await client.request(
            "items.list", {"thread_id": exported["thread"]["id"], "order": "asc", "limit": 100}
        )
        assert [i["id"] for i in exported["items"]] == [i["id"] for i in page["data"]]
        assert [i["type"] for i in exported["items"]][:2] == ["user_message", "assistant_message"]
    attachments = {a["metadata"]["id"]: a for a in document["attachments"]}
    assert set(attachments) == set(alice.uploads)
    for attachment_id, content in alice.uploads.items():
        assert base64.b64decode(attachments[attachment_id]["content_base64"]) == content
        assert attachments[attachment_id]["size"] == len(content)
    assert [a["thread_id"] for a in document["attachments"]].count(alice.threads[0]) == 1
    assert [(f["thread_id"], f["kind"]) for f in document["feedback"]] == [
        (alice.threads[0], "positive")
    ]
    purposes = sorted(u["purpose"] for u in document["usage"])
    assert purposes.count("transcription") == 1 and "answer" in purposes
    dictation = next(u for u in document["usage"] if u["purpose"] == "transcription")
    assert dictation["audio_bytes"] == 1200 and dictation["thread_id"] is None
    assert document["daily_usage"][0]["tokens"] > 0
    summary = done.stderr.strip()
    assert summary.startswith(f"exported user {alice.user_id}: 2 threads, ")

    out = tmp_path / "alice.json"
    to_file = await asyncio.to_thread(
        run_cli, tmp_path, database_url, "users", "export", alice.user_id, "--out", str(out)
    )
    assert to_file.returncode == 0 and to_file.stdout == "", to_file.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    written = json.loads(out.read_text())
    assert {k: v for k, v in written.items() if k != "exported_at"} == {
        k: v for k, v in document.items() if k != "exported_at"
    }
    assert [name for name in os.listdir(tmp_path) if name.startswith(".alice")] == []

    unwritable = await asyncio.to_thread(
        run_cli, tmp_path, database_url, "users", "export", alice.user_id, "--out", "/nope/x.json"
    )
    assert unwritable.returncode == 1
    assert unwritable.stderr.startswith("error: cannot write /nope/x.json")


ITEM_TEXT_BYTES = 1000
MANY_ITEMS = """
INSERT INTO thread_items (thread_id, id, created_at, payload)
SELECT %(thread)s::text, 'msg_' || g, t0 + g * interval '1 millisecond',
       jsonb_build_object(
           'type', 'assistant_message', 'id', 'msg_' || g, 'thread_id', %(thread)s::text,
           'created_at', t0 + g * interval '1 millisecond',
           'content', jsonb_build_array(jsonb_build_object(
               'type', 'output_text', 'annotations', '[]'::jsonb,
               'text', repeat('x', %(size)s::int) || g)))
FROM generate_series(1, %(count)s::int) AS g, (SELECT now() AS t0) AS start
"""


async def test_export_streams_rows_instead_of_holding_them(
    migrated_schema: tuple[str, PostgresStore], tmp_path: Path
) -> None:
    """20,000 items of 1 KB (20 MB) go out with a Python memory peak of a few hundred KB:
    rows come through server-side cursors, `fetch_size` at a time, and are written at once."""
    url, _store = migrated_schema
    count = 20_000
    await rows(
        url,
        "INSERT INTO threads (id, user_id, created_at, payload) VALUES ('thr_big', 'heavy', now(),"
        " jsonb_build_object('id', 'thr_big', 'created_at', now(), 'status',"
        " jsonb_build_object('type', 'active'), 'metadata', '{}'::jsonb))",
    )
    await rows(url, MANY_ITEMS, {"thread": "thr_big", "count": count, "size": ITEM_TEXT_BYTES})
    out = tmp_path / "heavy.json"

    with out.open("wb") as sink:
        tracemalloc.start()
        try:
            counts = await export_user(url, "heavy", sink, fetch_size=100)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    size = out.stat().st_size
    assert counts["thread_items"] == count
    assert size > count * ITEM_TEXT_BYTES
    assert peak < 2_000_000, f"peak {peak:,} bytes for {size:,} bytes written"
    document = json.loads(out.read_bytes())
    (thread,) = document["threads"]
    ids = [item["id"] for item in thread["items"]]
    assert ids == [f"msg_{n}" for n in range(1, count + 1)]
