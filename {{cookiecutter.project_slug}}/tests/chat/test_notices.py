"""Notices beside an answer, over HTTP in both OpenAI APIs: attachments the model-input budget
left out of the request, and a daily token budget nearly (or fully) spent."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.chat.inline_files import human_size
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, user_input
from tests.chat.test_model_input import image, inline_images, user_parts
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import rows, streamed_requests, uploaded
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]
IMAGE_BYTES_BUDGET = 90_000  # two 30,000-byte images fit (about 41 KB each as base64), not 3
DAILY_TOKENS = 1000


def notices(events: list[JSON]) -> list[JSON]:
    return [e for e in events if e["type"] == "notice"]


def position(events: list[JSON], predicate: Callable[[JSON], bool]) -> int:
    return next(i for i, e in enumerate(events) if predicate(e))


def is_answer(event: JSON) -> bool:
    return bool(
        event["type"] == "thread.item.done" and event["item"]["type"] == "assistant_message"
    )


def thread_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


# --- attachments left out -------------------------------------------------------------------------


@pytest.fixture(params=API_MODES)
def small_input(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(max_model_input_bytes=IMAGE_BYTES_BUDGET, openai_api=request.param)


async def test_a_notice_names_the_attachments_the_model_did_not_get(
    small_input: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """Three images, two fit: one warning before the answer naming the third; the next turns
    (images that fit; no attachments, older ones not resent) have none."""
    client = client_for(server=small_input)
    ids = [await uploaded(client, f"img{n}.png", image(n)) for n in range(3)]

    events = await client.send("three at once", attachments=ids)

    (notice,) = notices(events)
    assert notice["level"] == "warning" and notice["title"]
    assert "1 of the 3 attachments" in notice["message"] and "`img2.png`" in notice["message"]
    assert "img0.png" not in notice["message"]
    assert f"carries at most {human_size(IMAGE_BYTES_BUDGET)}." in notice["message"]
    assert position(events, lambda e: e["type"] == "notice") < position(events, is_answer)
    if small_input.settings.openai_api == "responses":  # the request agrees with the notice
        (parts,) = user_parts(streamed_requests(fake_model)[-1])
        assert len(inline_images(parts)) == 2

    thread_id = thread_of(events)
    fits = [await uploaded(client, f"ok{n}.png", image(10 + n)) for n in range(2)]
    assert notices(await client.send("two fit", thread_id, attachments=fits)) == []
    assert notices(await client.send("no files", thread_id)) == []


# --- the daily token budget -----------------------------------------------------------------------


@pytest.fixture(params=API_MODES)
def budgeted(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(user_daily_tokens=DAILY_TOKENS, openai_api=request.param)


async def spend(database_url: str, user_id: str, tokens: int) -> None:
    """As if the user had used `tokens` today already."""
    await rows(
        database_url,
        "INSERT INTO daily_usage (user_id, day, tokens)"
        " VALUES (%s, (now() AT TIME ZONE 'UTC')::date, %s)",
        user_id,
        tokens,
    )


@pytest.mark.parametrize(
    ("spent", "level"), [(0, None), (880, "warning"), (990, "danger")], ids=["fresh", "90%", "100%"]
)
async def test_an_answer_warns_when_the_daily_budget_is_nearly_spent(
    budgeted: AppServer,
    client_for: Callable[..., ChatKitClient],
    database_url: str,
    spent: int,
    level: str | None,
) -> None:
    """Tokens today (this turn's included: answer and title, ~30) from 90% of the budget: a
    warning with the share used, at the end of the answer; at 100%, that new messages are
    refused. Under 90%: no notice."""
    user_id = f"user-{uuid.uuid4().hex}"
    if spent:
        await spend(database_url, user_id, spent)
    client = client_for(user_id, server=budgeted)

    events = await client.send("hello")

    found = notices(events)
    if level is None:
        assert found == []
        return
    (notice,) = found
    assert notice["level"] == level
    assert position(events, lambda e: e["type"] == "notice") > position(events, is_answer)
    if level == "warning":
        assert re.search(r"You have used 9\d% of today's 1,000 tokens \(9\d\d\)", notice["message"])
    else:
        assert "You have used today's 1,000 tokens" in notice["message"]
        assert "refused until midnight UTC" in notice["message"]


async def test_the_notice_counts_a_turn_recorded_while_this_one_ran(
    budgeted: AppServer,
    client_for: Callable[..., ChatKitClient],
    database_url: str,
    fake_model: FakeModel,
) -> None:
    """Messages back to back: a turn may start before the previous one is recorded. The notice
    counts the day as recorded when the answer ends, so it is not a turn behind and the 100%
    notice is not skipped; the turn's own tokens still count once."""
    user_id = f"user-{uuid.uuid4().hex}"
    await spend(database_url, user_id, 700)
    client = client_for(user_id, server=budgeted)
    fake_model.delay = 0.02  # the previous turn lands while this answer streams
    events: list[JSON] = []
    async for event in client.stream("threads.create", {"input": user_input("hello")}):
        events.append(event)
        if event["type"] == "thread.created":
            await rows(
                database_url,
                "UPDATE daily_usage SET tokens = tokens + 300 WHERE user_id = %s",
                user_id,
            )
    (notice,) = notices(events)
    assert notice["level"] == "danger", notice
    assert position(events, lambda e: e["type"] == "notice") > position(events, is_answer)

    async def settled() -> bool:
        (used,) = await rows(
            database_url,
            "SELECT sum(input_tokens + output_tokens), count(*) FROM usage WHERE user_id = %s",
            user_id,
        )
        (day,) = await rows(
            database_url, "SELECT tokens FROM daily_usage WHERE user_id = %s", user_id
        )
        return bool(used[1]) and day[0] == 1000 + used[0]

    assert await wait_until(settled), "each model call counts once in the day"
    with pytest.raises(ChatKitHTTPError) as refused:
        await client.send("again", thread_of(events))
    assert refused.value.status == 429
