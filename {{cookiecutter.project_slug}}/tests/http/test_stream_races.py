"""Requests racing a running stream: a second retry of the same item is 409 JSON while the
first runs; a thread deleted mid-stream ends the stream with one error event and one INFO line,
no traceback."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from chatkit.errors import ErrorCode
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ErrorEvent, Page, Thread, ThreadCreatedEvent, ThreadStreamEvent

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.http.chatkit import ERROR_EVENT_START, guard_stream
from tests.ops.test_limits import live_leases
from tests.support.app import AppServer, wait_until
from tests.support.chatkit import json_error, post
from tests.support.fake_openai import FakeModel
from tests.support.logs import capturing


async def first_answer(client: ChatKitClient) -> tuple[str, str]:
    events = await client.send("hello")
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    item_id = next(
        e["item"]["id"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "user_message"
    )
    return thread_id, item_id


async def test_one_retry_of_an_item_at_a_time(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    thread_id, item_id = await first_answer(client)
    params = {"thread_id": thread_id, "item_id": item_id}
    fake_model.tokens, fake_model.delay = 30, 0.05
    stream = client.stream("threads.retry_after_item", params)
    await anext(stream)
    for _ in range(3):
        second = await post(client, "threads.retry_after_item", params)
        json_error(second, 409, "retry_running")
    assert [e async for e in stream][-1]["type"] != "error"
    fake_model.delay = 0

    async def released() -> bool:  # a moment after the response has ended
        return await live_leases(database_url, user_id) == 0

    assert await wait_until(released)
    again = [e async for e in client.stream("threads.retry_after_item", params)]
    assert again[-1]["type"] != "error"
    items = await client.request("items.list", {"thread_id": thread_id, "limit": 50})
    answers = [i for i in items["data"] if i["type"] == "assistant_message"]
    assert len(answers) == 1, "each retry replaced the answer; no parallel ones were left"


async def test_a_thread_deleted_mid_stream_ends_it_quietly(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for(f"user-{uuid.uuid4().hex}")
    fake_model.tokens, fake_model.delay = 30, 0.05
    with capturing(logging.DEBUG) as captured:
        stream = client.stream("threads.create", {"input": user_input("a long one")})
        created = await anext(stream)
        thread_id = created["thread"]["id"]
        await client.request("threads.delete", {"thread_id": thread_id})
        events = [e async for e in stream]
    assert events and events[-1]["type"] == "error"
    assert [e["type"] for e in events].count("error") == 1, events
    noisy = [r for r in captured.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == [], [(r.name, r.getMessage()) for r in noisy]
    gone = [r for r in captured.records if "thread is gone" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.INFO]
    response = await post(client, "threads.get_by_id", {"thread_id": thread_id})
    assert response.status_code == 404


def sdk_bytes(event: ThreadStreamEvent) -> bytes:
    """An event as the SDK streams it (ChatKitServer._serialize)."""
    data = event.model_dump_json(
        by_alias=True, exclude_none=True, context={"exclude_metadata": True}
    )
    return b"data: " + data.encode() + b"\n\n"


async def sdk_stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    raise NotFoundError("Thread thr_gone not found")


async def test_a_thread_deleted_before_its_message_was_saved_gets_one_error_event() -> None:
    """Deleted between `thread.created` and saving the user's message, the thread is gone
    before the SDK handles errors: the stream still ends with one error event and one INFO
    line; deleted later, the SDK's own error event is the only one."""
    created = sdk_bytes(
        ThreadCreatedEvent(thread=Thread(id="thr_gone", created_at=datetime.now(), items=Page()))
    )
    with capturing(logging.DEBUG) as captured:
        chunks = [c async for c in guard_stream(StreamingResult(sdk_stream(created)))]
    assert chunks[0] == created and len(chunks) == 2, chunks
    assert json.loads(chunks[1].removeprefix(b"data: "))["type"] == "error"
    gone = [r for r in captured.records if "thread is gone" in r.getMessage()]
    assert [r.levelno for r in gone] == [logging.INFO]

    sdk_error = sdk_bytes(ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True))
    assert sdk_error.startswith(ERROR_EVENT_START)
    chunks = [c async for c in guard_stream(StreamingResult(sdk_stream(created, sdk_error)))]
    assert chunks == [created, sdk_error]
