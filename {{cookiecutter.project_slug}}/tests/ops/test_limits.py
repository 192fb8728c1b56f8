"""Size limits (400) and per-user limits (429 with Retry-After), all before any stream starts.

Per-user limits live in PostgreSQL (`user_limits`), so each test's app reads and writes the
same rows another instance would. Each test uses a fresh user.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from psycopg import _queries as psycopg_queries

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, user_input
from {{ cookiecutter.project_slug }}.store.limit_rows import (
    FINISH_TURN,
    START_BUDGETED_TURN,
    START_TURN,
    TAKE_TOKEN,
)
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import hold_leases, json_error, post, rows, uploaded
from tests.support.fake_openai import FakeModel, Fault

JSON = dict[str, Any]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

RATE_LIMITED = {"rate_limit_messages_per_minute": 3}
TWO_STREAMS = {"max_concurrent_streams_per_user": 2}
BUDGET = {"user_daily_tokens": 40}
NO_LIMITS = {
    "rate_limit_messages_per_minute": 0,
    "max_concurrent_streams_per_user": 0,
    "user_daily_tokens": 0,
}


def retry_after(response: httpx.Response) -> int:
    """The Retry-After header, which must be whole seconds and match the body's."""
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1 and response.json()["error"]["retry_after"] == seconds
    return seconds


def thread_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


async def user_messages(client: ChatKitClient, thread_id: str) -> list[JSON]:
    page = await client.request("items.list", {"thread_id": thread_id, "limit": 100})
    return [i for i in page["data"] if i["type"] == "user_message"]


# --- sizes -------------------------------------------------------------------------------------


async def test_repeated_attachment_ids_collapse_into_one(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """The same id 20 times is one attachment: stored once, sent to the model once."""
    client = client_for()
    attachment_id = await uploaded(client, "dot.png", PNG)
    events = await client.send("look", attachments=[attachment_id] * 20)
    assert not [e for e in events if e["type"] == "error"]

    (stored,) = await user_messages(client, thread_of(events))
    assert [a["id"] for a in stored["attachments"]] == [attachment_id]
    body = [b for b in fake_model.requests if b.get("stream")][-1]
    user = [m for m in body["input"] if m.get("role") == "user"][-1]
    assert [part["type"] for part in user["content"]] == ["input_text", "input_image"]


async def test_too_many_attachments_is_400_before_any_stream(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """Eleven distinct attachments are refused; ten, however often repeated, are taken."""
    client = client_for()
    ids = [await uploaded(client, f"{n}.png", PNG) for n in range(11)]

    response = await post(client, "threads.create", {"input": user_input("x", attachments=ids)})
    json_error(response, 400, "too_many_attachments")
    assert (await client.request("threads.list", {}))["data"] == []
    assert not fake_model.requests

    events = await client.send("ten", attachments=ids[:10] * 3)
    (stored,) = await user_messages(client, thread_of(events))
    assert [a["id"] for a in stored["attachments"]] == ids[:10]


async def test_message_text_is_bounded(client_for: Callable[..., ChatKitClient]) -> None:
    """MAX_MESSAGE_CHARS (20,000) counts every text part and the quoted text."""
    client = client_for()
    too_long = user_input("a" * 10_000)
    too_long["content"].append({"type": "input_text", "text": "b" * 10_001})
    json_error(await post(client, "threads.create", {"input": too_long}), 400, "message_too_long")
    quoting = {**user_input("c" * 15_000), "quoted_text": "q" * 5_001}
    json_error(await post(client, "threads.create", {"input": quoting}), 400, "message_too_long")
    assert (await client.request("threads.list", {}))["data"] == []

    events = await client.send("d" * 20_000)
    thread_id = thread_of(events)
    params = {"thread_id": thread_id, "input": user_input("e" * 20_001)}
    json_error(await post(client, "threads.add_user_message", params), 400, "message_too_long")
    assert len(await user_messages(client, thread_id)) == 1


async def test_titles_are_at_most_200_characters(client_for: Callable[..., ChatKitClient]) -> None:
    client = client_for()
    thread_id = thread_of(await client.send("hi"))
    update = {"thread_id": thread_id, "title": "t" * 201}
    json_error(await post(client, "threads.update", update), 400, "title_too_long")
    assert (await client.request("threads.get_by_id", {"thread_id": thread_id}))["title"] != (
        "t" * 201
    )
    renamed = await client.request("threads.update", {"thread_id": thread_id, "title": "t" * 200})
    assert renamed["title"] == "t" * 200


async def test_feedback_names_at_most_100_ids(
    client_for: Callable[..., ChatKitClient], database_url: str
) -> None:
    """101 ids (even one id repeated) are refused before any query; 100 are taken."""
    client = client_for()
    thread_id = thread_of(await client.send("hi"))
    item_id = (await user_messages(client, thread_id))[0]["id"]
    params = {"thread_id": thread_id, "item_ids": [item_id] * 101, "kind": "positive"}
    json_error(await post(client, "items.feedback", params), 400, "too_many_items")
    assert await rows(database_url, "SELECT 1 FROM feedback WHERE item_id = %s", item_id) == []
    params["item_ids"] = [item_id] * 100
    assert await client.request("items.feedback", params) == {}


# --- per-user limits -----------------------------------------------------------------------------


async def test_messages_per_minute(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    """Three messages a minute: the fourth (a retry too) is a 429 with Retry-After; nothing
    is stored for it; another user is not affected."""
    server = app_factory(**RATE_LIMITED)
    client = client_for(server=server)
    thread_id = thread_of(await client.send("one"))
    await client.send("two", thread_id)
    await client.send("three", thread_id)
    before = await user_messages(client, thread_id)

    params = {"thread_id": thread_id, "input": user_input("four")}
    response = await post(client, "threads.add_user_message", params)
    json_error(response, 429, "rate_limited")
    assert 1 <= retry_after(response) <= 20  # one message every 20 s refills the bucket
    retry = {"thread_id": thread_id, "item_id": before[-1]["id"]}
    json_error(await post(client, "threads.retry_after_item", retry), 429, "rate_limited")
    assert await user_messages(client, thread_id) == before

    other = client_for(server=server)
    assert not [e for e in await other.send("hello") if e["type"] == "error"]


@pytest.fixture
def slow_model(fake_model: FakeModel) -> Iterator[FakeModel]:
    """Answers that stream for about two seconds."""
    fake_model.tokens, fake_model.delay = 40, 0.05
    yield fake_model


@pytest.fixture
def two_streams(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> tuple[AppServer, str, ChatKitClient]:
    """The app allowing two streams per user; a new user of it and their client."""
    server = app_factory(**TWO_STREAMS)
    user_id = f"user-{uuid.uuid4().hex}"
    return server, user_id, client_for(user_id, server=server)


async def start_stream(client: ChatKitClient, text: str) -> AsyncIterator[JSON]:
    """A new thread's stream, advanced to its first event (the stream is then running)."""
    stream = client.stream("threads.create", {"input": user_input(text)})
    await anext(stream)
    return stream


async def live_leases(database_url: str, user_id: str) -> int:
    found = await rows(
        database_url,
        "SELECT count(*) FROM user_limits AS l, jsonb_each(l.leases) AS e"
        " WHERE l.user_id = %s AND e.value::float8 > extract(epoch FROM now())",
        user_id,
    )
    return int(found[0][0]) if found else 0


async def test_concurrent_streams(
    two_streams: tuple[AppServer, str, ChatKitClient],
    client_for: Callable[..., ChatKitClient],
    slow_model: FakeModel,
    database_url: str,
) -> None:
    """Two streams at once: a third is a 429 until one ends; another user is not affected."""
    server, user_id, client = two_streams
    # The second answer hangs until the test closes it: it is still running, whatever the
    # machine's load, when the first one has ended (the two reach the model in either order).
    slow_model.faults[:] = [Fault(hang=True, only_for="two")]
    first, second = await start_stream(client, "one"), await start_stream(client, "two")

    response = await post(client, "threads.create", {"input": user_input("three")})
    json_error(response, 429, "too_many_streams")
    assert retry_after(response) >= 1
    other = client_for(server=server)
    await (await start_stream(other, "another user")).aclose()

    events = [e async for e in first]
    assert events[-1]["type"] != "error"

    async def one_left() -> bool:  # the lease goes a moment after the response has ended
        return await live_leases(database_url, user_id) == 1

    assert await wait_until(one_left)
    slow_model.tokens, slow_model.delay = 2, 0.0
    third = await client.send("three")
    assert not [e for e in third if e["type"] == "error"]
    await second.aclose()


async def test_concurrent_requests_never_take_more_than_the_limit(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    slow_model: FakeModel,
) -> None:
    """Six streams asked for at once: exactly two start, four get 429 (one atomic check)."""
    server = app_factory(**TWO_STREAMS)
    client = client_for(server=server)

    async def ask(n: int) -> int:
        body = {"type": "threads.create", "params": {"input": user_input(f"race {n}")}}
        async with client.http.stream("POST", client.url, json=body, headers=client.headers) as r:
            await r.aread()
            return r.status_code

    statuses = await asyncio.gather(*(ask(n) for n in range(6)))
    assert sorted(statuses) == [200, 200, 429, 429, 429, 429]


async def test_a_client_that_goes_away_releases_its_lease(
    two_streams: tuple[AppServer, str, ChatKitClient], slow_model: FakeModel, database_url: str
) -> None:
    _, user_id, client = two_streams
    streams = [await start_stream(client, "one"), await start_stream(client, "two")]
    assert await live_leases(database_url, user_id) == 2
    for stream in streams:
        await stream.aclose()  # drops the connection mid-answer

    async def released() -> bool:
        return await live_leases(database_url, user_id) == 0

    assert await wait_until(released)
    assert not [e for e in await client.send("again") if e["type"] == "error"]


async def test_leases_of_a_dead_instance_expire(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    database_url: str,
) -> None:
    """Leases held elsewhere count (the limit holds across instances) until they expire."""
    server = app_factory(**TWO_STREAMS)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    now = time.time()
    await hold_leases(database_url, user_id, a=now + 600, b=now + 600)
    json_error(
        await post(client, "threads.create", {"input": user_input("x")}), 429, "too_many_streams"
    )

    expired = {"a": now - 1, "b": now - 1}
    await rows(
        database_url,
        "UPDATE user_limits SET leases = %s::jsonb WHERE user_id = %s",
        json.dumps(expired),
        user_id,
    )
    assert not [e for e in await client.send("x") if e["type"] == "error"]

    async def no_leases() -> bool:  # expired ones dropped, this stream's released
        found = await rows(
            database_url, "SELECT leases FROM user_limits WHERE user_id = %s", user_id
        )
        return found == [({},)]

    assert await wait_until(no_leases)


async def test_daily_token_budget(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    database_url: str,
) -> None:
    """40 tokens a day: a first turn (answer 15 + title 15) and a second (15) pass; then 429
    until midnight UTC. Another user has their own budget."""
    server = app_factory(**BUDGET)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    thread_id = thread_of(await client.send("one"))
    await client.send("two", thread_id)

    async def spent() -> bool:  # recorded a moment after each response has ended
        daily = "SELECT tokens FROM daily_usage WHERE user_id = %s"
        return await rows(database_url, daily, user_id) == [(45,)]

    assert await wait_until(spent)

    params = {"thread_id": thread_id, "input": user_input("three")}
    response = await post(client, "threads.add_user_message", params)
    json_error(response, 429, "daily_budget_exceeded")
    until_midnight = 86400 - time.time() % 86400
    assert abs(retry_after(response) - until_midnight) <= 5
    assert not [e for e in await client_for(server=server).send("hi") if e["type"] == "error"]


class StatementLog:
    """The statements every PostgresStore in this process runs (the test's app too)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.queries: list[Any] = []
        execute = PostgresStore._execute

        async def logged(
            store: PostgresStore, query: Any, params: Any, *, fetch: bool
        ) -> tuple[list[tuple[Any, ...]], int]:
            self.queries.append(query)
            return await execute(store, query, params, fetch=fetch)

        monkeypatch.setattr(PostgresStore, "_execute", logged)

    def count(self, query: str) -> int:
        return sum(1 for q in self.queries if q == query)


async def test_limits_cost_one_statement_per_turn_and_one_to_finish(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One statement checks every limit and takes the lease, one releases it and records
    the usage; with every limit off there is no check at all."""
    client = client_for()
    log = StatementLog(monkeypatch)
    thread_id = thread_of(await client.send("warm"))
    assert await wait_until(lambda: log.count(FINISH_TURN) == 1)
    log.queries.clear()
    await client.send("counted", thread_id)
    assert await wait_until(lambda: log.count(FINISH_TURN) == 1)
    assert log.count(START_TURN) == 1

    unlimited = client_for(server=app_factory(**NO_LIMITS))
    log.queries.clear()
    await unlimited.send("free")
    assert await wait_until(lambda: log.count(FINISH_TURN) == 1)
    assert log.count(START_TURN) == 0


def test_the_limit_statements_are_parsed_once_and_plan_no_estimate_without_a_budget() -> None:
    """psycopg caches a statement's parse only up to MAX_CACHED_STATEMENT_LENGTH bytes (private:
    this fails loudly if it goes); START_TURN was parsed again every turn above it. Without a
    budget, the turn's statement has no estimate for PostgreSQL to plan (it reads thread_items)."""
    for statement in (START_TURN, START_BUDGETED_TURN, TAKE_TOKEN, FINISH_TURN):
        assert len(statement.encode()) <= psycopg_queries.MAX_CACHED_STATEMENT_LENGTH
    assert "thread_items" in START_BUDGETED_TURN
    assert "thread_items" not in START_TURN


async def test_limit_refusals_come_before_the_stream_as_json(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    """A refused streaming request is a JSON answer: the ChatKit client raises, no events."""
    client = client_for(server=app_factory(**RATE_LIMITED))
    for n in range(3):
        await client.send(f"m{n}")
    with pytest.raises(ChatKitHTTPError) as refusal:
        await client.send("m3")
    assert refusal.value.status == 429
    assert refusal.value.body["error"]["code"] == "rate_limited"
