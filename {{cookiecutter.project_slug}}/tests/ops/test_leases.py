"""Stream leases are short and renewed while their stream lives; the daily budget holds to one
turn of overshoot however many turns start at once (each reserves an estimate until it ends).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.ops import limits
from tests.ops.test_limits import live_leases, retry_after, start_stream
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import hold_leases, json_error, post, rows
from tests.support.fake_openai import FakeModel, Fault

ONE_STREAM = {"max_concurrent_streams_per_user": 1}


async def lease_expiries(database_url: str, user_id: str) -> list[float]:
    """Seconds until each of the user's leases expires."""
    found = await rows(
        database_url,
        "SELECT e.value::float8 - extract(epoch FROM now())::float8"
        " FROM user_limits AS l, jsonb_each(l.leases) AS e WHERE l.user_id = %s",
        user_id,
    )
    return [float(row[0]) for row in found]


async def test_a_lease_is_short_and_renewed_while_its_stream_lives(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Leases of 2 s renewed every 0.5 s: a stream of 4 s keeps its slot to the end (a second
    stream is refused all along), and the slot is free a moment after it ends."""
    monkeypatch.setattr(limits, "LEASE_SECONDS", 2.0)
    monkeypatch.setattr(limits, "RENEW_SECONDS", 0.5)
    server = app_factory(**ONE_STREAM)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    fake_model.tokens, fake_model.delay = 80, 0.05
    stream = await start_stream(client, "a long answer")
    for _ in range(3):
        await asyncio.sleep(1.2)
        (left,) = await lease_expiries(database_url, user_id)
        assert 0 < left <= 2.0
        response = await post(client, "threads.create", {"input": user_input("another")})
        json_error(response, 429, "too_many_streams")
        assert retry_after(response) <= 2
    events = [event async for event in stream]
    assert events[-1]["type"] != "error"

    async def free() -> bool:
        return await live_leases(database_url, user_id) == 0

    assert await wait_until(free)


async def test_a_lease_lasts_thirty_seconds(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    slow_model: FakeModel,
    database_url: str,
) -> None:
    """The slot of an instance that dies mid-stream frees within 30 s (its lease's life)."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=app_factory(**ONE_STREAM))
    stream = await start_stream(client, "one")
    (left,) = await lease_expiries(database_url, user_id)
    assert 25 < left <= limits.LEASE_SECONDS == 30
    await stream.aclose()


async def test_retry_after_is_the_time_until_the_soonest_lease_ends(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    database_url: str,
) -> None:
    """Slots held elsewhere (another instance, maybe dead): Retry-After says when the first
    of them expires, not a fixed guess."""
    server = app_factory(max_concurrent_streams_per_user=2)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    now = time.time()
    await hold_leases(database_url, user_id, a=now + 20, b=now + 7)
    response = await post(client, "threads.create", {"input": user_input("x")})
    json_error(response, 429, "too_many_streams")
    assert 6 <= retry_after(response) <= 8


async def test_parallel_turns_overshoot_the_daily_budget_by_one_turn_at_most(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """A budget of 100 tokens, 45 used: of eight turns asked for at once, those that start
    each hold their own estimate (about 20 tokens of text) and fit the budget together; the
    others get 429 until the running ones end."""
    server = app_factory(
        user_daily_tokens=100, max_concurrent_streams_per_user=20, rate_limit_messages_per_minute=0
    )
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    events = await client.send("first")  # answer 15 + title 15
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    await client.send("second", thread_id)  # 15

    async def spent() -> int:
        found = await rows(
            database_url, "SELECT tokens FROM daily_usage WHERE user_id = %s", user_id
        )
        return int(found[0][0]) if found else 0

    assert await wait_until(lambda: _equals(spent(), 45))
    fake_model.tokens, fake_model.delay = 30, 0.05  # each answer streams for about 1.5 s

    async def turn(n: int) -> tuple[int, Any]:
        params = {"thread_id": thread_id, "input": user_input(f"parallel {n}")}
        response = await post(client, "threads.add_user_message", params)
        return response.status_code, response

    answers = await asyncio.gather(*(turn(n) for n in range(8)))
    statuses = sorted(status for status, _ in answers)
    started = statuses.count(200)
    assert 1 <= started <= 3, statuses  # 45 + 3 estimates of ~18 is under 100; a 4th is not
    for status, response in answers:
        if status == 429:
            assert response.json()["error"]["code"] == "daily_budget_exceeded"
            assert retry_after(response) <= limits.LEASE_SECONDS
    assert await wait_until(lambda: _equals(spent(), 45 + 15 * started))
    assert await spent() <= 100 + 15, "one turn of overshoot at most"


async def _equals(value: Any, expected: int) -> bool:
    return bool(await value == expected)


@pytest.fixture
def slow_model(fake_model: FakeModel) -> FakeModel:
    fake_model.faults[:] = [Fault(hang=True)]
    return fake_model


async def test_retry_after_for_a_live_stream_is_its_next_renewal(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """A stream that lives on renews its lease within RENEW_SECONDS: a refusal says to come
    back then (it used to say the lease's whole 30 s while the stream ended 3 s later)."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=app_factory(**ONE_STREAM))
    fake_model.tokens, fake_model.delay = 30, 0.1
    stream = await start_stream(client, "a three-second answer")
    response = await post(client, "threads.create", {"input": user_input("another")})
    json_error(response, 429, "too_many_streams")
    assert 1 <= retry_after(response) <= limits.RENEW_SECONDS
    events = [event async for event in stream]
    assert events[-1]["type"] != "error"
