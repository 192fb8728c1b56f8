"""`items.feedback` kept in table `feedback`, and `feedback export`, on a real PostgreSQL.

Store tests share the session database and tell their rows apart by user (a fresh user
per test). Export tests need the whole table to themselves: each gets an empty schema of
its own (`fresh_schema_url`) with the migrations applied.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from chatkit.store import NotFoundError
from chatkit.types import InferenceOptions, ThreadMetadata, UserMessageItem, UserMessageTextContent

from {{ cookiecutter.project_slug }}.context import RequestContext
from {{ cookiecutter.project_slug }}.store.feedback_export import export_feedback
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support.chatkit import uid
from tests.support.commands import run_cli
from tests.support.db import make_context

PACKAGE = "{{ cookiecutter.project_slug }}"
EXPORT_KEYS = {"thread_id", "item_id", "user_id", "kind", "created_at", "updated_at"}

Row = tuple[Any, ...]


async def thread_with_items(
    store: PostgresStore, context: RequestContext, count: int = 2
) -> tuple[str, list[str]]:
    """A new thread of the context's user holding `count` messages; (thread id, item ids)."""
    start = datetime.now(UTC)
    thread = ThreadMetadata(id=uid("thr"), created_at=start)
    await store.save_thread(thread, context)
    item_ids = [uid("msg") for _ in range(count)]
    for n, item_id in enumerate(item_ids):
        item = UserMessageItem(
            id=item_id,
            thread_id=thread.id,
            created_at=start + timedelta(seconds=n),
            content=[UserMessageTextContent(text=f"message {n}")],
            attachments=[],
            inference_options=InferenceOptions(),
        )
        await store.add_thread_item(thread.id, item, context)
    return thread.id, item_ids


async def query(url: str, statement: str, *params: Any) -> list[Row]:
    """Rows straight from the database, past the store."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement.encode(), params)
        return await cursor.fetchall()


async def feedback_of_user(url: str, user_id: str) -> list[Row]:
    """(thread_id, item_id, kind, created_at, updated_at) of the user's rows, by keys."""
    return await query(
        url,
        "SELECT thread_id, item_id, kind, created_at, updated_at FROM feedback"
        " WHERE user_id = %s ORDER BY thread_id, item_id",
        user_id,
    )


async def feedback_on_thread(url: str, thread_id: str) -> list[Row]:
    """(item_id, user_id, kind) of every row on the thread, whoever gave it."""
    return await query(
        url,
        "SELECT item_id, user_id, kind FROM feedback WHERE thread_id = %s ORDER BY item_id",
        thread_id,
    )


@pytest.fixture
def statements(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The statements the store runs from now on (its `_execute` wrapped)."""
    seen: list[Any] = []
    execute = store._execute

    async def counting(
        query: Any, params: Any, *, fetch: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        seen.append(query)
        return await execute(query, params, fetch=fetch)

    monkeypatch.setattr(store, "_execute", counting)
    return seen


# --- saving -----------------------------------------------------------------------------


async def test_saving_keeps_one_row_per_item_in_one_statement(
    store: PostgresStore, context: RequestContext, database_url: str, statements: list[Any]
) -> None:
    thread_id, (first, second) = await thread_with_items(store, context)
    statements.clear()
    await store.save_feedback(thread_id, [first, second], "positive", context)
    assert len(statements) == 1
    rows = await feedback_of_user(database_url, context.user.id)
    assert [(t, i, k) for t, i, k, _, _ in rows] == sorted(
        [(thread_id, first, "positive"), (thread_id, second, "positive")]
    )
    assert all(created == updated for *_, created, updated in rows)


async def test_latest_kind_wins_and_created_at_stays(
    store: PostgresStore, context: RequestContext, database_url: str, statements: list[Any]
) -> None:
    thread_id, (item_id, _) = await thread_with_items(store, context)
    await store.save_feedback(thread_id, [item_id], "positive", context)
    [(_, _, _, created, updated)] = await feedback_of_user(database_url, context.user.id)
    statements.clear()
    await store.save_feedback(thread_id, [item_id], "negative", context)
    assert len(statements) == 1
    [(_, saved_item, kind, created_again, updated_again)] = await feedback_of_user(
        database_url, context.user.id
    )
    assert (saved_item, kind, created_again) == (item_id, "negative", created)
    assert updated_again > updated
    await store.save_feedback(thread_id, [item_id], "positive", context)
    [(_, _, kind, _, _)] = await feedback_of_user(database_url, context.user.id)
    assert kind == "positive"


async def test_repeated_ids_collapse(
    store: PostgresStore, context: RequestContext, database_url: str, statements: list[Any]
) -> None:
    thread_id, (first, second) = await thread_with_items(store, context)
    statements.clear()
    await store.save_feedback(thread_id, [first, second, first, first], "negative", context)
    assert len(statements) == 1
    rows = await feedback_of_user(database_url, context.user.id)
    assert sorted(item for _, item, *_ in rows) == sorted([first, second])


async def test_no_ids_is_a_no_op(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    thread_id, _ = await thread_with_items(store, context)
    await store.save_feedback(thread_id, [], "positive", context)
    assert await feedback_of_user(database_url, context.user.id) == []


async def test_unknown_kind_is_refused_before_any_statement(
    store: PostgresStore, context: RequestContext, statements: list[Any]
) -> None:
    thread_id, item_ids = await thread_with_items(store, context)
    statements.clear()
    with pytest.raises(ValueError, match="positive"):
        await store.save_feedback(thread_id, item_ids, "meh", context)
    assert statements == []


async def test_the_table_itself_refuses_other_kinds(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    thread_id, (item_id, _) = await thread_with_items(store, context)
    with pytest.raises(psycopg.errors.CheckViolation):
        await query(
            database_url,
            "INSERT INTO feedback (thread_id, item_id, user_id, kind) VALUES (%s, %s, %s, 'meh')",
            thread_id,
            item_id,
            context.user.id,
        )


async def test_an_unknown_item_writes_nothing(
    store: PostgresStore, context: RequestContext, database_url: str, statements: list[Any]
) -> None:
    thread_id, (first, second) = await thread_with_items(store, context)
    await store.save_feedback(thread_id, [first], "positive", context)
    before = await feedback_of_user(database_url, context.user.id)
    statements.clear()
    with pytest.raises(NotFoundError):
        await store.save_feedback(thread_id, [first, second, uid("msg")], "negative", context)
    assert len(statements) == 1
    assert await feedback_of_user(database_url, context.user.id) == before  # not even updated


async def test_an_item_of_another_of_my_threads_is_not_found(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    _, (item_id, _) = await thread_with_items(store, context)
    other_thread_id, _ = await thread_with_items(store, context)
    with pytest.raises(NotFoundError):
        await store.save_feedback(other_thread_id, [item_id], "positive", context)
    with pytest.raises(NotFoundError):
        await store.save_feedback(uid("thr"), [item_id], "positive", context)
    assert await feedback_of_user(database_url, context.user.id) == []


async def test_only_the_owner_gives_feedback(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    alice, bob = context, make_context()
    alice_thread, (alice_item, _) = await thread_with_items(store, alice)
    bob_thread, (bob_item, _) = await thread_with_items(store, bob)
    await store.save_feedback(alice_thread, [alice_item], "positive", alice)
    before = await feedback_on_thread(database_url, alice_thread)
    attempts = [
        (alice_thread, [alice_item]),  # alice's thread and item
        (bob_thread, [alice_item]),  # alice's item named in bob's own thread
        (bob_thread, [bob_item, alice_item]),  # one of his own, one of hers
        (alice_thread, [bob_item]),  # his item named in her thread
    ]
    for thread_id, item_ids in attempts:
        with pytest.raises(NotFoundError):
            await store.save_feedback(thread_id, item_ids, "negative", bob)
    assert await feedback_on_thread(database_url, alice_thread) == before
    assert before == [(alice_item, alice.user.id, "positive")]
    assert await feedback_of_user(database_url, bob.user.id) == []


async def test_feedback_touches_no_cached_rows(
    store: PostgresStore, context: RequestContext
) -> None:
    thread_id, item_ids = await thread_with_items(store, context)
    await store.load_thread(thread_id, context)
    await store.load_thread_items(thread_id, None, 10, "desc", context)
    cached = dict(context.cache)
    await store.save_feedback(thread_id, item_ids, "positive", context)
    assert context.cache == cached


async def test_concurrent_feedback_on_one_item_stays_one_row(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    thread_id, (item_id, _) = await thread_with_items(store, context)
    kinds = ["positive", "negative"] * 5
    await asyncio.gather(
        *(store.save_feedback(thread_id, [item_id], kind, context) for kind in kinds)
    )
    [(_, saved_item, kind, _, _)] = await feedback_of_user(database_url, context.user.id)
    assert saved_item == item_id and kind in kinds


# --- deleting ---------------------------------------------------------------------------


async def test_rows_go_with_their_item(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    thread_id, (first, second) = await thread_with_items(store, context)
    await store.save_feedback(thread_id, [first, second], "positive", context)
    await store.delete_thread_item(thread_id, first, context)
    assert await feedback_on_thread(database_url, thread_id) == [
        (second, context.user.id, "positive")
    ]


async def test_rows_go_with_their_thread(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    thread_id, item_ids = await thread_with_items(store, context)
    kept_thread, kept_items = await thread_with_items(store, context)
    await store.save_feedback(thread_id, item_ids, "negative", context)
    await store.save_feedback(kept_thread, kept_items, "positive", context)
    await store.delete_thread(thread_id, context)
    assert await feedback_on_thread(database_url, thread_id) == []
    assert len(await feedback_on_thread(database_url, kept_thread)) == len(kept_items)


async def test_feedback_racing_a_thread_delete_is_saved_then_deleted_or_not_found(
    store: PostgresStore, context: RequestContext, database_url: str
) -> None:
    for _ in range(5):
        thread_id, item_ids = await thread_with_items(store, context)
        save, delete = await asyncio.gather(
            store.save_feedback(thread_id, item_ids, "positive", context),
            store.delete_thread(thread_id, context),
            return_exceptions=True,
        )
        assert save is None or isinstance(save, NotFoundError), save
        assert delete is None
        assert await feedback_on_thread(database_url, thread_id) == []


# --- export -----------------------------------------------------------------------------


def parse_lines(text: str) -> list[dict[str, Any]]:
    """The export's JSON lines; every line must be one JSON object with exactly our keys."""
    assert text == "" or text.endswith("\n")
    records = [json.loads(line) for line in text.splitlines()]
    for record in records:
        assert set(record) == EXPORT_KEYS, record
        assert record["kind"] in ("positive", "negative")
        for key in ("created_at", "updated_at"):
            assert record[key].endswith("Z"), record  # UTC
    return records


def expected(rows: list[Row]) -> list[dict[str, Any]]:
    """Export records made from rows read straight from the table."""
    return [
        {
            "thread_id": thread_id,
            "item_id": item_id,
            "user_id": user_id,
            "kind": kind,
            "created_at": created_at,
            "updated_at": updated_at,
        }
        for thread_id, item_id, user_id, kind, created_at, updated_at in rows
    ]


def with_datetimes(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with their ISO times parsed, to compare with the table's values."""
    return [
        {
            **record,
            "created_at": datetime.fromisoformat(record["created_at"]),
            "updated_at": datetime.fromisoformat(record["updated_at"]),
        }
        for record in records
    ]


ALL_ROWS = (
    "SELECT thread_id, item_id, user_id, kind, created_at, updated_at FROM feedback"
    " ORDER BY updated_at, thread_id, item_id, user_id"
)

Scenario = Callable[[], Awaitable[dict[str, Any]]]


@pytest.fixture
def scenario(migrated_schema: tuple[str, PostgresStore]) -> Scenario:
    """Alice likes two items, Bob dislikes one, then Alice changes her mind on the first."""

    async def play() -> dict[str, Any]:
        url, store = migrated_schema
        alice, bob = make_context("alice"), make_context("bob")
        alice_thread, (a1, a2) = await thread_with_items(store, alice)
        bob_thread, (b1, _) = await thread_with_items(store, bob)
        await store.save_feedback(alice_thread, [a1, a2], "positive", alice)
        await store.save_feedback(bob_thread, [b1], "negative", bob)
        await store.save_feedback(alice_thread, [a1], "negative", alice)
        return {"url": url, "order": [a2, b1, a1], "rows": await query(url, ALL_ROWS)}

    return play


async def test_export_writes_every_row_oldest_change_first(scenario: Scenario) -> None:
    played = await scenario()
    out = io.StringIO()
    assert await export_feedback(played["url"], out, None) == 3
    records = parse_lines(out.getvalue())
    assert with_datetimes(records) == expected(played["rows"])
    assert [(r["item_id"], r["user_id"], r["kind"]) for r in records] == list(
        zip(
            played["order"],
            ["alice", "bob", "alice"],
            ["positive", "negative", "negative"],
            strict=True,
        )
    )


async def test_export_since_keeps_rows_changed_from_then(scenario: Scenario) -> None:
    played = await scenario()
    since = played["rows"][1][5]  # bob's row changed at this time
    out = io.StringIO()
    assert await export_feedback(played["url"], out, since) == 2
    assert with_datetimes(parse_lines(out.getvalue())) == expected(played["rows"][1:])
    out = io.StringIO()
    assert await export_feedback(played["url"], out, since + timedelta(days=1)) == 0
    assert out.getvalue() == ""


async def test_export_streams_in_batches(migrated_schema: tuple[str, PostgresStore]) -> None:
    url, store = migrated_schema
    context = make_context()
    thread_id, item_ids = await thread_with_items(store, context, count=25)
    await store.save_feedback(thread_id, item_ids, "positive", context)
    out = io.StringIO()
    assert await export_feedback(url, out, None, batch_size=7) == 25
    assert [r["item_id"] for r in parse_lines(out.getvalue())] == sorted(item_ids)


async def test_cli_export_prints_only_json_lines(scenario: Scenario, tmp_path: Path) -> None:
    played = await scenario()
    done = await asyncio.to_thread(run_cli, tmp_path, played["url"], "feedback", "export")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert with_datetimes(parse_lines(done.stdout)) == expected(played["rows"])


async def test_cli_export_since(scenario: Scenario, tmp_path: Path) -> None:
    played = await scenario()
    url, rows = played["url"], played["rows"]
    since = rows[1][5].astimezone(UTC).isoformat()
    cases = [(since, rows[1:]), ("2000-01-01", rows), ("2999-12-31T23:59:59+02:00", [])]
    for value, rows_wanted in cases:
        done = await asyncio.to_thread(
            run_cli, tmp_path, url, "feedback", "export", "--since", value
        )
        assert done.returncode == 0, done.stderr
        assert with_datetimes(parse_lines(done.stdout)) == expected(rows_wanted), value


@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", ""])
def test_cli_bad_since_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = run_cli(
        tmp_path, "postgresql://u@127.0.0.1:1/db", "feedback", "export", "--since", value
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "argument --since: not an ISO 8601 date or date-time" in done.stderr


def test_cli_unreachable_database_is_one_line_without_password(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "postgresql://app:s3cret-pw@127.0.0.1:1/app", "feedback", "export")
    assert done.returncode == 1
    assert done.stdout == ""
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach the database: ")
    assert "s3cret-pw" not in done.stderr


async def test_cli_without_the_table_says_to_upgrade(fresh_schema_url: str, tmp_path: Path) -> None:
    done = await asyncio.to_thread(run_cli, tmp_path, fresh_schema_url, "feedback", "export")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"error: no feedback table: run `python -m {PACKAGE} db upgrade` first\n"
