"""Model failures become readable error events; the user's message stays; cancel stops the model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.chat.model import NO_KEY, api_key_for
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text, user_input
from {{ cookiecutter.project_slug }}.errors import MissingApiKeyError
from tests.support.app import AppServer, app_settings, wait_until
from tests.support.chatkit import error_events, items_of, thread_id_of
from tests.support.fake_openai import FakeModel, Fault

FAILURES: list[tuple[str, Fault, str, bool]] = [
    ("401", Fault(status=401), "rejected the server's API key", False),
    ("429", Fault(status=429, retry_after="7"), "Try again in 7 s", True),
    ("500", Fault(status=500), "answered with an error (500)", True),
    ("503", Fault(status=503), "answered with an error (503)", True),
    ("reset mid-stream", Fault(reset_after_tokens=2), "", True),
]


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
@pytest.mark.parametrize("name, fault, message, retry", FAILURES, ids=[f[0] for f in FAILURES])
async def test_model_failure_is_an_error_event(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    api: str,
    name: str,
    fault: Fault,
    message: str,
    retry: bool,
) -> None:
    client = client_for(server=app_factory(openai_api=api))
    fake_model.faults.append(fault)
    events = await client.send("please answer")
    (error,) = error_events(events)
    assert error["allow_retry"] is retry
    assert message in error.get("message", "")
    assert "Traceback" not in json.dumps(events)

    thread_id = thread_id_of(events)
    items = await items_of(client, thread_id)
    assert items[0]["type"] == "user_message", "the user's message is kept"
    assert all(i["type"] != "assistant_message" or assistant_text(i) for i in items)

    again = await client.send("try again", thread_id)
    assert not error_events(again), "the next turn works"
    assert (await items_of(client, thread_id))[-1]["type"] == "assistant_message"


async def test_timeout_is_an_error_event(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    client = client_for(server=app_factory(openai_timeout=0.5))
    fake_model.faults.append(Fault(hang=True))
    started = time.monotonic()
    events = await client.send("hello?")
    assert time.monotonic() - started < 5
    (error,) = error_events(events)
    assert "did not answer within 0.5 seconds" in error["message"]
    assert error["allow_retry"] is True


async def test_missing_api_key_is_an_error_event_not_a_crash(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """Without a key and without OPENAI_BASE_URL (OpenAI's API, which needs a key) a message
    gets a readable error event; nothing is sent anywhere."""
    server = app_factory(openai_api_key=None, openai_base_url=None)
    client = client_for(server=server)
    events = await client.send("hello")
    (error,) = error_events(events)
    assert "OPENAI_API_KEY" in error["message"] and error["allow_retry"] is False
    items = await items_of(client, thread_id_of(events))
    assert [i["type"] for i in items] == ["user_message"]
    assert fake_model.requests == []


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_a_local_server_needs_no_api_key(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    api: str,
) -> None:
    """With OPENAI_BASE_URL (Ollama, vLLM, ...) a missing key blocks nothing: the model is
    asked with a placeholder key and the answer is streamed and stored."""
    client = client_for(server=app_factory(openai_api_key=None, openai_api=api))
    events = await client.send("hello")
    assert not error_events(events), error_events(events)
    items = await items_of(client, thread_id_of(events))
    assert [i["type"] for i in items] == ["user_message", "assistant_message"]
    assert assistant_text(items[1]) == "tok0 tok1 tok2 tok3 tok4 "
    assert fake_model.requests, "the local server was asked"


def test_the_placeholder_key_is_only_for_a_server_of_your_own() -> None:
    """No key: a placeholder for OPENAI_BASE_URL, MissingApiKeyError for OpenAI itself."""
    for missing in (None, "", "  "):
        local = app_settings("embedded", "http://127.0.0.1:11434/v1", openai_api_key=missing)
        assert api_key_for(local) == NO_KEY
    keyed = app_settings("embedded", "http://127.0.0.1:11434/v1", openai_api_key="sk-mine")
    assert api_key_for(keyed) == "sk-mine"
    for base_url in (None, "https://api.openai.com/v1"):
        openai_itself = app_settings("embedded", "", openai_base_url=base_url, openai_api_key=None)
        with pytest.raises(MissingApiKeyError):
            api_key_for(openai_itself)


async def test_client_disconnect_cancels_the_model_call(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    fake_model.tokens, fake_model.delay = 200, 0.02
    client = client_for()
    seen: list[dict[str, Any]] = []
    async with client.http.stream(
        "POST",
        client.url,
        json={"type": "threads.create", "params": {"input": user_input("long story")}},
        headers=client.headers,
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
            deltas = [e for e in seen if e["type"] == "thread.item.updated"]
            if len(deltas) >= 5:
                break  # leaving the block closes the connection mid-stream
    thread_id = thread_id_of(seen)

    await wait_until(lambda: fake_model.abandoned >= 1)
    assert fake_model.abandoned == 1, "the upstream model stream was closed"
    assert fake_model.completed == 0

    async def saved_items() -> list[dict[str, Any]] | None:
        items = await items_of(client, thread_id)
        return items if len(items) >= 2 else None

    items = await wait_until(saved_items) or []
    assert [i["type"] for i in items] == ["user_message", "assistant_message"]
    partial = assistant_text(items[1])
    assert partial.startswith("tok0 ") and len(partial) < len("tok0 ") * 200
