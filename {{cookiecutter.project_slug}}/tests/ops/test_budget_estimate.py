"""The daily budget reserves this request's own input estimate before the model is called: a
turn that would pass what is left is refused (429) up front, and the reservation is settled
by the real usage when the turn ends."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.ops.usage import CHARS_PER_TOKEN
from tests.ops.test_limits import retry_after, start_stream
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import json_error, post, rows
from tests.support.fake_openai import FakeModel

BUDGET = 1000


async def spend(database_url: str, user_id: str, tokens: int) -> None:
    await rows(
        database_url,
        "INSERT INTO daily_usage (user_id, day, tokens)"
        " VALUES (%s, (now() AT TIME ZONE 'UTC')::date, %s)",
        user_id,
        tokens,
    )


async def reservations(database_url: str, user_id: str) -> list[float]:
    found = await rows(database_url, "SELECT reserved FROM user_limits WHERE user_id = %s", user_id)
    held = found[0][0] if found else {}
    return sorted(float(v) for v in (json.loads(held) if isinstance(held, str) else held).values())


async def test_a_turn_larger_than_what_is_left_is_refused_before_the_model(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    server = app_factory(user_daily_tokens=BUDGET, rate_limit_messages_per_minute=0)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    await spend(database_url, user_id, 900)
    big = "x" * (150 * CHARS_PER_TOKEN)  # 150 tokens: more than the 100 left
    response = await post(client, "threads.create", {"input": user_input(big)})
    error = json_error(response, 429, "daily_budget_exceeded")
    assert "needs about 150" in error["message"]
    assert abs(retry_after(response) - (86400 - time.time() % 86400)) <= 5
    assert fake_model.requests == []
    small = await client.send("y" * (50 * CHARS_PER_TOKEN))  # 50 tokens fit
    assert not [e for e in small if e["type"] == "error"]


async def test_the_reservation_is_this_requests_estimate_and_is_settled(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """A small turn after a big one reserves its own size (the last turn's used to set it),
    and a thread's history counts in the estimate."""
    server = app_factory(user_daily_tokens=BUDGET, rate_limit_messages_per_minute=0)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    fake_model.tokens, fake_model.delay = 20, 0.05
    stream = client.stream("threads.create", {"input": user_input("z" * 2000)})  # 500 tokens
    thread_id = (await anext(stream))["thread"]["id"]
    assert await reservations(database_url, user_id) == [500.0]
    _ = [e async for e in stream]

    stream = await start_stream(client, "hi")
    assert await reservations(database_url, user_id) == [1.0]
    _ = [e async for e in stream]

    params = {"thread_id": thread_id, "input": user_input("more")}
    follow_up = client.stream("threads.add_user_message", params)
    await anext(follow_up)
    (held,) = await reservations(database_url, user_id)
    assert 500 < held < 600, "the thread's 2,000 characters and its answer count"
    _ = [e async for e in follow_up]

    async def settled() -> bool:
        return await reservations(database_url, user_id) == []

    assert await wait_until(settled)
