"""No one gets in where they don't belong (beyond the per-request checks in test_api.py).

User B, with a perfectly valid token, names A's attachments, A's items inside B's own
threads, and A's threads and items as pagination cursors: every time "not found", and A's
data stays exactly as it was. Tokens that are almost right (a non-string subject, not yet
valid, absurdly long) are refused cleanly.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from chatkit.types import FileAttachment

from {{ cookiecutter.project_slug }}.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.store import PostgresStore

from .fixtures_app import TEST_AUTH_SECRET, AppServer
from .fixtures_db import make_context

JSON = dict[str, Any]


async def new_thread(client: ChatKitClient, text: str) -> str:
    events = await client.send(text)
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


async def post(client: ChatKitClient, type_: str, params: JSON) -> httpx.Response:
    body = {"type": type_, "params": params}
    return await client.http.post(client.url, json=body, headers=client.headers)


async def snapshot(client: ChatKitClient, thread_id: str) -> JSON:
    """Everything the owner can see of a thread: metadata, items and the thread list."""
    return {
        "thread": await client.request("threads.get_by_id", {"thread_id": thread_id}),
        "items": await client.request("items.list", {"thread_id": thread_id, "limit": 100}),
        "threads": await client.request("threads.list", {"limit": 100}),
    }


def assert_not_found(response: httpx.Response, *secrets: str) -> None:
    assert response.status_code == 404, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"
    for secret in secrets:
        assert secret not in response.text


@pytest.fixture
def alice_id() -> str:
    return f"alice-{uuid.uuid4().hex}"


async def test_anothers_attachment_cannot_be_used_or_deleted(
    client_for: Callable[..., ChatKitClient], store: PostgresStore, alice_id: str
) -> None:
    alice_ctx = make_context(alice_id)
    attachment = FileAttachment(
        id=f"atc_{uuid.uuid4().hex[:8]}", name="payroll.pdf", mime_type="application/pdf"
    )
    await store.save_attachment(attachment, alice_ctx)
    mallory = client_for()
    own_thread = await new_thread(mallory, "mine")

    attempts = [
        ("attachments.delete", {"attachment_id": attachment.id}),
        ("threads.create", {"input": user_input("x", attachments=[attachment.id])}),
        (
            "threads.add_user_message",
            {"thread_id": own_thread, "input": user_input("x", attachments=[attachment.id])},
        ),
    ]
    for type_, params in attempts:
        assert_not_found(await post(mallory, type_, params), "payroll")

    assert await store.load_attachment(attachment.id, alice_ctx) == attachment
    threads = await mallory.request("threads.list", {"limit": 100})
    assert [t["id"] for t in threads["data"]] == [own_thread], "no thread was half-created"


async def test_anothers_items_inside_my_own_thread_are_not_found(
    client_for: Callable[..., ChatKitClient], alice_id: str
) -> None:
    """Pairing my thread with someone else's item id must not reach their item."""
    alice, mallory = client_for(alice_id), client_for()
    alice_thread = await new_thread(alice, "secret plans")
    alice_items = await alice.request("items.list", {"thread_id": alice_thread})
    user_item, reply_item = (item["id"] for item in alice_items["data"])
    own_thread = await new_thread(mallory, "mine")
    before = await snapshot(alice, alice_thread)
    mallory_before = await mallory.request("items.list", {"thread_id": own_thread})

    attempts = [
        ("items.feedback", {"thread_id": own_thread, "item_ids": [reply_item], "kind": "negative"}),
        ("threads.retry_after_item", {"thread_id": own_thread, "item_id": user_item}),
        (
            "threads.custom_action",
            {"thread_id": own_thread, "item_id": reply_item, "action": {"type": "x"}},
        ),
        (
            "threads.sync_custom_action",
            {"thread_id": own_thread, "item_id": reply_item, "action": {"type": "x"}},
        ),
        ("items.list", {"thread_id": own_thread, "after": user_item}),
        ("items.list", {"thread_id": alice_thread, "after": user_item}),
        ("threads.list", {"after": alice_thread}),
        ("threads.list", {"after": alice_thread, "order": "asc"}),
    ]
    for type_, params in attempts:
        assert_not_found(await post(mallory, type_, params), "secret")

    assert await snapshot(alice, alice_thread) == before
    assert await mallory.request("items.list", {"thread_id": own_thread}) == mallory_before


async def test_retry_and_title_change_by_another_user_touch_nothing(
    client_for: Callable[..., ChatKitClient], fake_model: Any, alice_id: str
) -> None:
    """A retry would delete the items after the named one and call the model: neither happens."""
    alice, mallory = client_for(alice_id), client_for()
    alice_thread = await new_thread(alice, "first")
    await alice.send("second", alice_thread)
    items = (await alice.request("items.list", {"thread_id": alice_thread}))["data"]
    before = await snapshot(alice, alice_thread)
    model_calls = len(fake_model.requests)

    for item in items:
        response = await post(
            mallory, "threads.retry_after_item", {"thread_id": alice_thread, "item_id": item["id"]}
        )
        assert_not_found(response)
    assert_not_found(
        await post(mallory, "threads.update", {"thread_id": alice_thread, "title": "pwned"})
    )
    assert_not_found(await post(mallory, "threads.delete", {"thread_id": alice_thread}))

    assert len(fake_model.requests) == model_calls, "the model was never asked"
    assert await snapshot(alice, alice_thread) == before


async def test_look_alike_user_ids_are_different_users(
    client_for: Callable[..., ChatKitClient], alice_id: str
) -> None:
    alice = client_for(alice_id)
    thread_id = await new_thread(alice, "hello")
    for look_alike in (alice_id.upper(), f" {alice_id}", f"{alice_id}\t", alice_id[:-1]):
        other = client_for(look_alike)
        assert_not_found(await post(other, "threads.get_by_id", {"thread_id": thread_id}))
        assert (await other.request("threads.list", {}))["data"] == []


def _bearer(claims: JSON) -> dict[str, str]:
    return {"Authorization": "Bearer " + jwt.encode(claims, TEST_AUTH_SECRET, algorithm="HS256")}


def almost_valid_tokens() -> list[tuple[str, dict[str, str]]]:
    now = int(time.time())
    return [
        ("sub is an int", _bearer({"sub": 42, "exp": now + 60})),
        ("sub is a list", _bearer({"sub": ["u1"], "exp": now + 60})),
        ("sub is null", _bearer({"sub": None, "exp": now + 60})),
        ("not valid yet (nbf)", _bearer({"sub": "u1", "exp": now + 600, "nbf": now + 300})),
        ("issued in the future (iat)", _bearer({"sub": "u1", "exp": now + 600, "iat": now + 300})),
        ("exp is a string", _bearer({"sub": "u1", "exp": "tomorrow"})),
        ("two tokens", {"Authorization": "Bearer a.b.c d.e.f"}),
        ("lower-case scheme, junk", {"Authorization": "bearer ~!@#$%^&*()"}),
        ("10 KB of junk", {"Authorization": "Bearer " + "A" * 10_000}),
    ]


@pytest.mark.parametrize(
    "name, headers", almost_valid_tokens(), ids=[n for n, _ in almost_valid_tokens()]
)
async def test_almost_valid_tokens_are_401(
    app_server: AppServer, name: str, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient() as http:
        body = {"type": "threads.list", "params": {}}
        response = await http.post(app_server.url + "/chatkit", json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


async def test_a_100_kb_token_is_refused_cleanly(app_server: AppServer) -> None:
    """Validly signed but 100 KB long: refused (by the HTTP server or as a 401), never a 500."""
    padding = "p" * 100_000
    token = jwt.encode(
        {"sub": "u1", "exp": int(time.time()) + 60, "pad": padding},
        TEST_AUTH_SECRET,
        algorithm="HS256",
        headers={"kid": padding},
    )
    async with httpx.AsyncClient() as http:
        body = {"type": "threads.list", "params": {}}
        try:
            response = await http.post(
                app_server.url + "/chatkit",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.RemoteProtocolError:
            response = None  # the HTTP server hung up on an oversized header: also a refusal
        if response is not None:
            assert response.status_code < 500, response.text
        health = await http.get(app_server.url + "/health")
    assert health.status_code == 200


async def test_expired_token_is_refused_on_streaming_and_changing_requests(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], alice_id: str
) -> None:
    """A token that expired is refused on every request type, streaming ones included."""
    alice = client_for(alice_id)
    thread_id = await new_thread(alice, "hi")
    expired = app_server.token(alice_id, ttl_seconds=-1)
    headers = {"Authorization": f"Bearer {expired}"}
    async with httpx.AsyncClient() as http:
        for type_, params in [
            ("threads.add_user_message", {"thread_id": thread_id, "input": user_input("x")}),
            ("threads.get_by_id", {"thread_id": thread_id}),
            ("threads.delete", {"thread_id": thread_id}),
        ]:
            body = {"type": type_, "params": params}
            response = await http.post(app_server.url + "/chatkit", json=body, headers=headers)
            assert response.status_code == 401, (type_, response.text)
    items = await alice.request("items.list", {"thread_id": thread_id, "order": "asc"})
    assert [item["type"] for item in items["data"]] == ["user_message", "assistant_message"]
