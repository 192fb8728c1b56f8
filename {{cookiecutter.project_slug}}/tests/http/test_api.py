"""The HTTP surface: thread and item requests, user isolation, auth and bad input."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, user_input
from tests.support.app import TEST_AUTH_SECRET, AppServer


async def new_thread(client: ChatKitClient, text: str = "hi") -> str:
    events = await client.send(text)
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


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


def _token(claims: dict[str, Any], key: str = TEST_AUTH_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def bad_authorizations() -> list[tuple[str, dict[str, str]]]:
    now = int(time.time())
    valid = {"sub": "u1", "exp": now + 60}
    none_token = jwt.encode(valid, None, algorithm="none")  # type: ignore[arg-type]
    return [
        ("missing", {}),
        ("not bearer", {"Authorization": "Basic dTpw"}),
        ("empty bearer", {"Authorization": "Bearer"}),
        ("malformed", {"Authorization": "Bearer not.a.jwt"}),
        ("expired", {"Authorization": f"Bearer {_token({'sub': 'u1', 'exp': now - 10})}"}),
        ("wrong secret", {"Authorization": f"Bearer {_token(valid, 'another-secret' * 4)}"}),
        ("alg none", {"Authorization": f"Bearer {none_token}"}),
        ("HS512", {"Authorization": f"Bearer {_token(valid, alg='HS512')}"}),
        ("no sub", {"Authorization": f"Bearer {_token({'exp': now + 60})}"}),
        ("no exp", {"Authorization": f"Bearer {_token({'sub': 'u1'})}"}),
        ("empty sub", {"Authorization": f"Bearer {_token({'sub': ' ', 'exp': now + 60})}"}),
    ]


@pytest.mark.parametrize(
    "name, headers", bad_authorizations(), ids=[n for n, _ in bad_authorizations()]
)
async def test_bad_credentials_are_401(
    app_server: AppServer, name: str, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient() as http:
        body = {"type": "threads.list", "params": {}}
        response = await http.post(app_server.url + "/chatkit", json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_health(app_server: AppServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(app_server.url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
