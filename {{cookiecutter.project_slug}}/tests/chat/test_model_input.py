"""MAX_MODEL_INPUT_BYTES: the attachment bytes inline in one model request are bounded.

Newest message's attachments first, then earlier ones, newest first, while they fit; the
rest become one-line notes, and their bytes are not read at all.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store import PostgresStore
from {{ cookiecutter.project_slug }}.store.queries import (
    LOAD_ATTACHMENT_CONTENT,
    LOAD_ATTACHMENT_CONTENTS,
)
from tests.support.app import AppServer
from tests.support.chatkit import streamed_requests, uploaded
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]
IMAGE_BYTES = 1000
BUDGET = 2500  # two images fit, three do not
NOTE = re.compile(
    r"^\[The user attached '(img\d+\.png)' \(image/png, 1 KB\) earlier; not resent\]$"
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
        assert sum(len(blob) for blob in sent) <= BUDGET
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
        "[The user attached 'img2.png' (image/png, 1 KB); "
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
