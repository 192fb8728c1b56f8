"""No one gets in where they don't belong (beyond the per-request checks in test_api.py).

User B, with a perfectly valid token, names A's attachments, A's items inside B's own
threads, and A's threads and items as pagination cursors: every time "not found", and A's
data stays exactly as it was. Tokens that are almost right (a non-string subject, not yet
valid, absurdly long) are refused cleanly, and so are validly signed tokens whose `sub` could
not be stored (NUL, control characters, lone surrogates, over 255 characters) or whose `exp`
is further away than TOKEN_MAX_TTL_SECONDS. A client that hangs up in the middle of its
request body is not an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from chatkit.types import FileAttachment

from {{ cookiecutter.project_slug }}.context import verify_token
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.store import PostgresStore
from tests.support.app import TEST_AUTH_SECRET, AppServer, bearer, signed_token, wait_until
from tests.support.chatkit import new_thread, post
from tests.support.db import make_context

JSON = dict[str, Any]


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
    # (A tab or another control character makes no look-alike: such a sub is refused, below.)
    for look_alike in (alice_id.upper(), f" {alice_id}", f"{alice_id}\u200b", alice_id[:-1]):
        other = client_for(look_alike)
        assert_not_found(await post(other, "threads.get_by_id", {"thread_id": thread_id}))
        assert (await other.request("threads.list", {}))["data"] == []


def refused_authorizations() -> list[tuple[str, dict[str, str]]]:
    now = int(time.time())
    # Minted at collection: "not yet" must stay in the future however long the suite runs.
    valid, later = {"sub": "u1", "exp": now + 60}, {"sub": "u1", "exp": now + 7200}
    none_token = jwt.encode(valid, None, algorithm="none")  # type: ignore[arg-type]
    return [
        ("missing", {}),
        ("not bearer", {"Authorization": "Basic dTpw"}),
        ("empty bearer", {"Authorization": "Bearer"}),
        ("malformed", {"Authorization": "Bearer not.a.jwt"}),
        ("expired", bearer(signed_token({"sub": "u1", "exp": now - 10}))),
        ("wrong secret", bearer(signed_token(valid, "another-secret" * 4))),
        ("alg none", bearer(none_token)),
        ("HS512", bearer(signed_token(valid, alg="HS512"))),
        ("no sub", bearer(signed_token({"exp": now + 60}))),
        ("no exp", bearer(signed_token({"sub": "u1"}))),
        ("empty sub", bearer(signed_token({"sub": " ", "exp": now + 60}))),
        ("sub is an int", bearer(signed_token({"sub": 42, "exp": now + 60}))),
        ("sub is a list", bearer(signed_token({"sub": ["u1"], "exp": now + 60}))),
        ("sub is null", bearer(signed_token({"sub": None, "exp": now + 60}))),
        ("not valid yet (nbf)", bearer(signed_token({**later, "nbf": now + 3600}))),
        ("issued in the future (iat)", bearer(signed_token({**later, "iat": now + 3600}))),
        ("exp is a string", bearer(signed_token({"sub": "u1", "exp": "tomorrow"}))),
        ("two tokens", {"Authorization": "Bearer a.b.c d.e.f"}),
        ("lower-case scheme, junk", {"Authorization": "bearer ~!@#$%^&*()"}),
        ("10 KB of junk", {"Authorization": "Bearer " + "A" * 10_000}),
        ("sub holds a NUL", bearer(signed_token({"sub": "u1\x00", "exp": now + 60}))),
        ("sub holds a tab", bearer(signed_token({"sub": "u1\t", "exp": now + 60}))),
        ("sub holds a newline", bearer(signed_token({"sub": "u1\nadmin", "exp": now + 60}))),
        ("sub holds DEL", bearer(signed_token({"sub": "u1\x7f", "exp": now + 60}))),
        ("sub holds a C1 control", bearer(signed_token({"sub": "u1\x85", "exp": now + 60}))),
        ("sub is a lone surrogate", bearer(signed_token({"sub": "u1\ud800", "exp": now + 60}))),
        ("sub is blank", bearer(signed_token({"sub": " \u3000 ", "exp": now + 60}))),
        ("sub is 256 characters", bearer(signed_token({"sub": "u" * 256, "exp": now + 60}))),
        ("iat is infinite", bearer(signed_token({**valid, "iat": float("inf")}))),
        ("exp is infinite", bearer(signed_token({"sub": "u1", "exp": float("inf")}))),
        ("exp a year away", bearer(signed_token({"sub": "u1", "exp": now + 365 * 24 * 3600}))),
    ]


@pytest.mark.parametrize("name", [n for n, _ in refused_authorizations()])
async def test_bad_credentials_are_401(app_server: AppServer, name: str) -> None:
    # made now, not when the tests were collected: "not valid yet" must still be in the future
    headers = dict(refused_authorizations())[name]
    async with httpx.AsyncClient() as http:
        body = {"type": "threads.list", "params": {}}
        response = await http.post(app_server.url + "/chatkit", json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_100_kb_token_is_refused_cleanly(app_server: AppServer) -> None:
    """Validly signed but 100 KB long: refused (by the HTTP server or as a 401), never a 500."""
    padding = "p" * 100_000
    claims = {"sub": "u1", "exp": int(time.time()) + 60, "pad": padding}
    token = jwt.encode(claims, TEST_AUTH_SECRET, algorithm="HS256", headers={"kid": padding})
    async with httpx.AsyncClient() as http:
        body = {"type": "threads.list", "params": {}}
        try:
            response = await http.post(
                app_server.url + "/chatkit",
                json=body,
                headers=bearer(token),
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
    headers = bearer(expired)
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


async def test_a_255_character_sub_is_a_user(app_server: AppServer) -> None:
    """The longest allowed user id works end to end (the limit is not off by one)."""
    async with ChatKitClient(app_server.url, app_server.token("u" * 255)) as client:
        page = await client.request("threads.list", {})
    assert page["data"] == []


@pytest.mark.parametrize("claim", ["name", "email"])
async def test_unsafe_name_or_email_claims_are_dropped_not_fatal(
    app_server: AppServer, claim: str
) -> None:
    """A NUL in an optional claim costs the claim (None), never the request (no 500)."""
    now = int(time.time())
    claims = {"sub": f"u-{uuid.uuid4().hex}", "exp": now + 60, claim: "x\x00y"}
    token = signed_token(claims)
    user = verify_token(token, app_server.settings)
    assert (user.id, getattr(user, claim)) == (claims["sub"], None)
    async with ChatKitClient(app_server.url, token) as client:
        events = await client.send("hello")
    assert any(event["type"] == "thread.created" for event in events)


async def test_token_lifetime_is_capped(app_server: AppServer) -> None:
    """`exp` beyond TOKEN_MAX_TTL_SECONDS is a 401; the `token` command's default lifetime
    (TOKEN_TTL_SECONDS) is within it."""
    settings = app_server.settings
    assert settings.token_max_ttl_seconds >= settings.token_ttl_seconds
    too_long = app_server.token("u1", ttl_seconds=settings.token_max_ttl_seconds + 120)
    default = app_server.token("u1")
    body = {"type": "threads.list", "params": {}}
    async with httpx.AsyncClient() as http:
        refused, accepted = [
            await http.post(app_server.url + "/chatkit", json=body, headers=bearer(t))
            for t in (too_long, default)
        ]
    assert refused.status_code == 401, refused.text
    assert "TOKEN_MAX_TTL_SECONDS" in refused.json()["error"]["message"]
    assert accepted.status_code == 200, accepted.text


class Collect(logging.Handler):
    """Keeps every log record it sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_logs(app_server: AppServer) -> Iterator[Collect]:
    """Every record logged during the test (after the app started), its info lines too."""
    collect, root = Collect(), logging.getLogger()
    package = logging.getLogger("{{ cookiecutter.project_slug }}")
    level = package.level
    package.setLevel(logging.INFO)
    root.addHandler(collect)
    yield collect
    root.removeHandler(collect)
    package.setLevel(level)


@pytest.mark.parametrize("path", ["/chatkit", "/attachments"])
async def test_client_hanging_up_mid_body_is_not_an_error(
    app_server: AppServer, app_logs: Collect, path: str
) -> None:
    """The client sends its headers and part of its body, then disconnects: the app ends the
    request quietly (no "unhandled error", nothing at warning level) and stays healthy."""
    port = int(app_server.url.rsplit(":", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {app_server.token('hang-up')}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    writer.write(head.encode() + b'--b\r\nContent-Disposition: form-data; name="file"')
    await writer.drain()
    writer.close()  # whenever the app reads next, the client is gone
    await writer.wait_closed()

    def finished() -> bool:
        return any(
            r.levelno >= logging.WARNING
            or (r.getMessage() == "request" and getattr(r, "path", None) == path)
            for r in app_logs.records
        )

    assert await wait_until(finished), "the app never finished the request"
    loud = [f"{r.name}: {r.getMessage()}" for r in app_logs.records if r.levelno >= logging.WARNING]
    assert loud == []
    async with httpx.AsyncClient() as http:
        assert (await http.get(app_server.url + "/health")).status_code == 200


async def test_error_bodies_repeat_at_most_a_short_excerpt_of_the_input(
    client_for: Callable[..., ChatKitClient],
) -> None:
    """A long string anywhere a client can put one (a type, an action, an id, a dict key, a
    model name): the error says what is wrong without sending it back; at most 200 of its
    characters, however long it was."""
    client = client_for()
    thread_id = await new_thread(client, "hi")
    long = "Z" * 100_000
    attempts: list[JSON] = [
        {"type": long, "params": {}},
        {
            "type": "threads.custom_action",
            "params": {"thread_id": thread_id, "action": {"type": long}},
        },
        {
            "type": "threads.custom_action",
            "params": {"thread_id": thread_id, "action": {"type": "x" * 100, "payload": {long: 1}}},
        },
        {"type": "threads.get_by_id", "params": {"thread_id": long}},
        {"type": "items.list", "params": {"thread_id": thread_id, "order": long}},
        {"type": "threads.create", "params": {"input": {**user_input("x"), "attachments": [long]}}},
        {
            "type": "threads.create",
            "params": {"input": {**user_input("x"), "inference_options": {"model": long}}},
        },
        {"type": "threads.create", "params": {"input": {"content": {long: long}}}},
        {"type": "attachments.create", "params": {"name": long, "size": 1, "mime_type": "a/b"}},
        {"type": "attachments.create", "params": {"name": "a", "size": 1, "mime_type": long}},
    ]
    for body in attempts:
        response = await client.http.post(client.url, json=body, headers=client.headers)
        assert 400 <= response.status_code < 500, response.text[:300]
        assert "Z" * 201 not in response.text, (body["type"][:40], response.text[:600])
        assert len(response.content) < 4000, (body["type"][:40], len(response.content))
