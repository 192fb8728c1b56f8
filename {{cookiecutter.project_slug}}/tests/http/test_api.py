"""The HTTP surface: thread and item requests, user isolation, auth and bad input."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, user_input
from {{ cookiecutter.project_slug }}.store import PostgresStore
from tests.support.app import AppServer
from tests.support.chatkit import items_of, json_error, new_thread, post


async def test_threads_list_get_update_delete(client_for: Callable[..., ChatKitClient]) -> None:
    client = client_for()
    first, second = await new_thread(client, "one"), await new_thread(client, "two")

    listed = await client.request("threads.list", {"order": "desc", "limit": 10})
    assert [t["id"] for t in listed["data"]] == [second, first]
    assert listed["has_more"] is False

    page = await client.request("threads.list", {"order": "asc", "limit": 1})
    assert [t["id"] for t in page["data"]] == [first] and page["has_more"] is True
    rest = await client.request(
        "threads.list", {"order": "asc", "limit": 1, "after": page["after"]}
    )
    assert [t["id"] for t in rest["data"]] == [second]

    thread = await client.request("threads.get_by_id", {"thread_id": first})
    assert [i["type"] for i in thread["items"]["data"]] == ["user_message", "assistant_message"]

    renamed = await client.request("threads.update", {"thread_id": first, "title": "Renamed"})
    assert renamed["title"] == "Renamed"
    assert (await client.request("threads.get_by_id", {"thread_id": first}))["title"] == "Renamed"

    assert await client.request("threads.delete", {"thread_id": first}) == {}
    with pytest.raises(ChatKitHTTPError) as gone:
        await client.request("threads.get_by_id", {"thread_id": first})
    assert gone.value.status == 404
    remaining = await client.request("threads.list", {"limit": 10})
    assert [t["id"] for t in remaining["data"]] == [second]


async def test_items_list_pages(client_for: Callable[..., ChatKitClient]) -> None:
    client = client_for()
    thread_id = await new_thread(client, "a")
    await client.send("b", thread_id)
    page = await client.request("items.list", {"thread_id": thread_id, "limit": 3, "order": "asc"})
    assert len(page["data"]) == 3 and page["has_more"] is True
    tail = await client.request(
        "items.list", {"thread_id": thread_id, "limit": 3, "order": "asc", "after": page["after"]}
    )
    assert len(tail["data"]) == 1 and tail["has_more"] is False
    ids = [i["id"] for i in page["data"] + tail["data"]]
    newest_first = await client.request("items.list", {"thread_id": thread_id, "order": "desc"})
    assert [i["id"] for i in newest_first["data"]] == ids[::-1]


async def test_feedback_on_own_items(client_for: Callable[..., ChatKitClient]) -> None:
    client = client_for()
    thread_id = await new_thread(client)
    items = await client.request("items.list", {"thread_id": thread_id})
    item_ids = [items["data"][-1]["id"]]
    params = {"thread_id": thread_id, "item_ids": item_ids, "kind": "positive"}
    assert await client.request("items.feedback", params) == {}


def foreign_requests(thread_id: str, item_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every request type that names a thread or an item, aimed at someone else's."""
    return [
        ("threads.get_by_id", {"thread_id": thread_id}),
        ("threads.update", {"thread_id": thread_id, "title": "stolen"}),
        ("threads.delete", {"thread_id": thread_id}),
        ("items.list", {"thread_id": thread_id}),
        ("items.feedback", {"thread_id": thread_id, "item_ids": [item_id], "kind": "negative"}),
        ("threads.add_user_message", {"thread_id": thread_id, "input": user_input("hack")}),
        ("threads.retry_after_item", {"thread_id": thread_id, "item_id": item_id}),
        (
            "threads.custom_action",
            {"thread_id": thread_id, "item_id": item_id, "action": {"type": "x", "payload": {}}},
        ),
        ("threads.add_client_tool_output", {"thread_id": thread_id, "result": {}}),
    ]


async def test_other_users_get_not_found_and_change_nothing(
    client_for: Callable[..., ChatKitClient],
) -> None:
    alice, mallory = client_for("alice-" + str(time.time_ns())), client_for()
    thread_id = await new_thread(alice, "secret plans")
    before = await alice.request("items.list", {"thread_id": thread_id})
    item_id = before["data"][0]["id"]

    for type_, params in foreign_requests(thread_id, item_id):
        response = await mallory.http.post(
            mallory.url, json={"type": type_, "params": params}, headers=mallory.headers
        )
        assert response.status_code == 404, (type_, response.status_code, response.text)
        assert response.json()["error"]["code"] == "not_found"
        assert "secret" not in response.text

    assert (await mallory.request("threads.list", {}))["data"] == []
    after = await alice.request("items.list", {"thread_id": thread_id})
    assert after == before
    assert (await alice.request("threads.get_by_id", {"thread_id": thread_id}))["title"] != "stolen"


@pytest.mark.parametrize(
    "type_, params",
    foreign_requests("thr_missing", "msg_missing"),
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_unknown_ids_are_404_before_any_stream(
    client_for: Callable[..., ChatKitClient], type_: str, params: dict[str, Any]
) -> None:
    client = client_for()
    response = await client.http.post(
        client.url, json={"type": type_, "params": params}, headers=client.headers
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")


async def test_unknown_attachment_is_404(client_for: Callable[..., ChatKitClient]) -> None:
    client = client_for()
    body = {"type": "threads.create", "params": {"input": user_input("x", attachments=["atc_x"])}}
    response = await client.http.post(client.url, json=body, headers=client.headers)
    assert response.status_code == 404


BAD_BODIES: list[tuple[str, bytes]] = [
    ("not json", b"{not json"),
    ("empty", b""),
    ("json array", b"[1, 2]"),
    ("unknown type", b'{"type": "threads.explode", "params": {}}'),
    ("missing params", b'{"type": "threads.get_by_id"}'),
    ("wrong field type", b'{"type": "threads.list", "params": {"limit": "many"}}'),
    ("invalid utf-8", b'{"type": "threads.get_by_id", "params": {"thread_id": "\xff\xfe"}}'),
    ("bad order", b'{"type": "threads.list", "params": {"order": "sideways"}}'),
]


@pytest.mark.parametrize("name, body", BAD_BODIES, ids=[name for name, _ in BAD_BODIES])
async def test_bad_input_is_400_json(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], name: str, body: bytes
) -> None:
    client = client_for()
    response = await client.http.post(
        client.url, content=body, headers={**client.headers, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert (await client.http.get(app_server.url + "/health")).status_code == 200


async def test_oversized_body_is_413(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    server = app_factory(max_request_bytes=2048)
    client = client_for(server=server)
    big = {"type": "threads.create", "params": {"input": user_input("x" * 5000)}}
    response = await client.http.post(client.url, json=big, headers=client.headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_a_small_types_body_limit_holds_before_the_body_is_read(
    app_factory: Callable[..., AppServer],
) -> None:
    """A 10 MB threads.create (under dictation's limit) is refused from its first bytes: the
    413 names MAX_REQUEST_BYTES and arrives while the rest of the body is still unsent."""
    server = app_factory(max_request_bytes=2048)
    url = urlsplit(server.url)
    head = json.dumps({"type": "threads.create", "params": {"input": user_input("x" * 600)}})
    declared = 10 * 1024 * 1024
    request = (
        f"POST /chatkit HTTP/1.1\r\nHost: {url.hostname}\r\n"
        f"Authorization: Bearer {server.token('big-body')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    ).encode() + head.encode()[:1000]
    with socket.create_connection(
        (url.hostname or "127.0.0.1", url.port or 80), timeout=10
    ) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "too_large"
    assert "over 2048 bytes" in body["error"]["message"]


async def test_health(app_server: AppServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(app_server.url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("bug", [ValueError, RuntimeError, NotImplementedError, KeyError])
@pytest.mark.parametrize(
    "method, type_", [("load_threads", "threads.list"), ("load_thread", "threads.add_user_message")]
)
async def test_a_bug_is_an_opaque_500_with_a_logged_traceback(
    client_for: Callable[..., ChatKitClient],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    bug: type[Exception],
    method: str,
    type_: str,
) -> None:
    """An exception our code did not expect is a 500 (never a 400 blaming the client), its
    traceback is logged, and the body says nothing about it."""
    client = client_for()
    thread_id = await new_thread(client)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise bug("secret detail of the bug")

    monkeypatch.setattr(PostgresStore, method, broken)
    params = {"thread_id": thread_id, "input": user_input("hi")}
    with caplog.at_level(logging.ERROR):
        response = await post(client, type_, params)
    assert json_error(response, 500, "internal") == {
        "code": "internal",
        "message": "internal server error",
    }
    assert "secret detail" not in response.text
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is bug]
    assert logged, caplog.text


async def test_requests_the_sdk_cannot_run_are_400_before_any_stream(
    client_for: Callable[..., ChatKitClient],
) -> None:
    """A retry that names no user message, structured input for an item that asks nothing,
    and a sync action (not served here) are 400 JSON errors, not broken streams; nothing
    changes."""
    client = client_for()
    thread_id = await new_thread(client)
    before = await items_of(client, thread_id)
    user_item, reply = before[0]["id"], before[-1]["id"]
    answer = {"status": "answered", "answers": {"q1": {"values": ["blue"]}}}
    structured = {"thread_id": thread_id, "item_id": user_item, "input": answer}
    retry = {"thread_id": thread_id, "item_id": reply}
    json_error(await post(client, "threads.add_structured_input", structured), 400, "invalid_item")
    json_error(await post(client, "threads.retry_after_item", retry), 400, "invalid_item")
    sync = {"thread_id": thread_id, "action": {"type": "no.such.action"}}
    json_error(await post(client, "threads.sync_custom_action", sync), 400, "invalid_action")
    assert await items_of(client, thread_id) == before
