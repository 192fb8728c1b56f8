"""MAX_MODEL_INPUT_BYTES: what one model request may carry, every byte of it counted.

Texts, notes and tool outputs first (the oldest items stay out while they do not fit), then
files inline: the newest message's first, then earlier ones, newest first, while they fit;
the rest become one-line notes, and their bytes are not read at all.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.chat.history import json_size
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store import PostgresStore
from {{ cookiecutter.project_slug }}.store.queries import (
    LOAD_ATTACHMENT_CONTENT,
    LOAD_ATTACHMENT_CONTENTS,
)
from tests.support.app import AppServer
from tests.support.chatkit import (
    json_error,
    post,
    streamed_requests,
    tool_call,
    upload,
    uploaded,
)
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]
IMAGE_BYTES = 30_000
BUDGET = 100_000  # two images fit (about 41 KB each, base64 and framing), three do not
NOTE = re.compile(
    r"^\[The user attached '(img\d+\.png)' \(image/png, 30 KB\) earlier; not resent\]$"
)


def image(number: int) -> bytes:
    """IMAGE_BYTES bytes that start like a PNG, different for every image."""
    header = b"\x89PNG\r\n\x1a\n" + number.to_bytes(4, "big")
    return header + os.urandom(IMAGE_BYTES - len(header))


def user_parts(body: JSON) -> list[list[JSON]]:
    """The content parts of each user message of a Responses request, oldest first."""
    return [
        list(message["content"])
        for message in body["input"]
        if message.get("role") == "user" and isinstance(message.get("content"), list)
    ]


def inline_images(parts: list[JSON]) -> list[bytes]:
    prefix = "data:image/png;base64,"
    return [
        base64.b64decode(p["image_url"][len(prefix) :]) for p in parts if p["type"] == "input_image"
    ]


def notes(parts: list[JSON]) -> list[str]:
    return [p["text"] for p in parts if p["type"] == "input_text" and p["text"].startswith("[")]


@pytest.fixture
def server(app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(max_model_input_bytes=BUDGET)


async def test_a_thread_of_images_does_not_resend_them_all(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """Six turns with an image each: every request carries the newest image and the one
    before it (2,000 bytes of a 2,500-byte budget); each older image is a note."""
    client = client_for(server=server)
    images = [image(n) for n in range(6)]
    thread_id: str | None = None
    for n, data in enumerate(images):
        attachment_id = await uploaded(client, f"img{n}.png", data)
        events = await client.send(f"turn {n}", thread_id, attachments=[attachment_id])
        assert not [e for e in events if e["type"] == "error"]
        thread_id = thread_id or next(
            e["thread"]["id"] for e in events if e["type"] == "thread.created"
        )

    requests = streamed_requests(fake_model)
    assert len(requests) == 6
    for n, body in enumerate(requests):
        messages = user_parts(body)
        sent = [blob for parts in messages for blob in inline_images(parts)]
        assert json_size(body["input"]) <= BUDGET
        assert inline_images(messages[-1]) == [images[n]], "the newest image always goes inline"
        assert sent == images[max(0, n - 1) : n + 1]
        noted = [NOTE.match(text) for parts in messages[:-1] for text in notes(parts)]
        assert [m.group(1) if m else None for m in noted] == [f"img{k}.png" for k in range(n - 1)]


async def test_the_newest_message_comes_first_and_what_does_not_fit_is_a_note(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """Three images in one message, two fit: the third is a note saying it was too large."""
    client = client_for(server=server)
    images = [image(n) for n in range(3)]
    ids = [await uploaded(client, f"img{n}.png", data) for n, data in enumerate(images)]
    await client.send("three at once", attachments=ids)
    (parts,) = user_parts(streamed_requests(fake_model)[-1])
    assert inline_images(parts) == images[:2]
    assert notes(parts) == [
        "[The user attached 'img2.png' (image/png, 30 KB); "
        "too large to send to the model with this message.]"
    ]


async def test_the_attachments_of_a_turn_are_read_in_one_statement(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """However many attachments the history holds: one statement for their sizes and the
    bytes that fit, none per attachment."""
    client = client_for(server=server)
    ids = [await uploaded(client, f"img{n}.png", image(n)) for n in range(4)]
    events = await client.send("first", attachments=ids[:2])
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")

    queries: list[Any] = []
    execute = PostgresStore._execute

    async def logged(
        store: PostgresStore, query: Any, params: Any, *, fetch: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        queries.append(query)
        return await execute(store, query, params, fetch=fetch)

    monkeypatch.setattr(PostgresStore, "_execute", logged)
    await client.send("second", thread_id, attachments=ids[2:])
    assert queries.count(LOAD_ATTACHMENT_CONTENTS) == 1
    assert queries.count(LOAD_ATTACHMENT_CONTENT) == 0
    (older, newest) = user_parts(streamed_requests(fake_model)[-1])
    assert len(inline_images(newest)) == 2 and len(notes(older)) == 2


# --- every byte counts ----------------------------------------------------------------------

TIGHT = 150_000
OVERHEAD = 8 * 1024
"""What a request carries beside the conversation: instructions, tool definitions, options."""
NAME = "n" * 251 + ".png"  # 255 characters, the longest name accepted


def conversation_bytes(body: JSON) -> int:
    return json_size(body.get("input") or body.get("messages"))


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_every_field_is_bounded_and_no_request_carries_more_than_the_budget(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
    api: str,
) -> None:
    """Each client-supplied field one past its bound is refused before anything is stored;
    at their bounds (ten files named with 255 characters reused in every message, messages
    of 20,000 characters, 64 KiB tool outputs), turn after turn, no model request carries
    more than MAX_MODEL_INPUT_BYTES of conversation."""
    server = app_factory(openai_api=api, max_model_input_bytes=TIGHT)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    limit = server.settings.max_tool_output_bytes

    create = {"name": NAME + "x", "size": 10, "mime_type": "image/png"}
    json_error(await post(client, "attachments.create", create), 400, "name_too_long")
    answer = await upload(
        server.url + "/attachments", NAME + "x", "image/png", image(99), headers=client.headers
    )
    json_error(answer, 400, "name_too_long")
    ids = [await uploaded(client, NAME, image(n)) for n in range(10)]

    thread_id: str | None = None
    for turn in range(3):
        events = await client.send("w" * 20_000, thread_id, attachments=ids)
        assert not [e for e in events if e["type"] == "error"], events[-1]
        thread_id = thread_id or next(
            e["thread"]["id"] for e in events if e["type"] == "thread.created"
        )
        await store.add_thread_item(thread_id, tool_call(thread_id), make_context(user_id))
        over = {"thread_id": thread_id, "result": "r" * (limit - 1)}  # its JSON: limit + 1
        json_error(
            await post(client, "threads.add_client_tool_output", over), 413, "tool_output_too_large"
        )
        action = {"type": "any.action", "payload": {"text": "p" * 65_536}}
        json_error(
            await post(client, "threads.custom_action", {"thread_id": thread_id, "action": action}),
            413,
            "action_payload_too_large",
        )
        at_limit = {"thread_id": thread_id, "result": f"turn {turn} " + "r" * (limit - 9)}
        events = [e async for e in client.stream("threads.add_client_tool_output", at_limit)]
        assert not [e for e in events if e["type"] == "error"], events[-1]

    streamed = [
        (body, size)
        for body, size in zip(fake_model.requests, fake_model.sizes, strict=True)
        if body.get("stream")
    ]
    assert len(streamed) == 6
    for body, size in streamed:
        assert conversation_bytes(body) <= TIGHT
        assert size <= TIGHT + OVERHEAD
    newest = json.dumps(streamed[-1][0])
    assert "turn 2 r" in newest and "w" * 20_000 in newest, "the newest turn always goes"
    assert "turn 0 r" not in newest, "the oldest tool output stayed out"
