"""Small helpers for talking to the app over HTTP: raw requests, threads, uploads, errors."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import psycopg
from chatkit.types import ClientToolCallItem

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def tool_call(
    thread_id: str, status: Literal["pending", "completed"] = "pending"
) -> ClientToolCallItem:
    """A client tool call item (pick_color) to store in a thread, pending unless told."""
    return ClientToolCallItem(
        id=f"ctc_{uuid.uuid4().hex}",
        thread_id=thread_id,
        created_at=datetime.now(UTC),
        call_id=f"call_{uuid.uuid4().hex}",
        name="pick_color",
        arguments={"palette": "warm"},
        status=status,
    )


async def post(client: ChatKitClient, type_: str, params: JSON) -> httpx.Response:
    """A raw POST /chatkit (its whole answer read), to see the status of any answer."""
    body = {"type": type_, "params": params}
    return await client.http.post(client.url, json=body, headers=client.headers)


def json_error(response: httpx.Response, status: int, code: str) -> JSON:
    """Assert a JSON error (not a stream) with this status and code; its error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: JSON = response.json()["error"]
    assert error["code"] == code, error
    return error


def thread_id_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


async def new_thread(client: ChatKitClient, text: str = "hello") -> str:
    return thread_id_of(await client.send(text))


async def items_of(client: ChatKitClient, thread_id: str) -> list[JSON]:
    page = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    return list(page["data"])


def error_events(events: list[JSON]) -> list[JSON]:
    return [e for e in events if e["type"] == "error"]


def done_items(events: list[JSON], type_: str) -> list[JSON]:
    return [
        e["item"] for e in events if e["type"] == "thread.item.done" and e["item"]["type"] == type_
    ]


def streamed_requests(fake: FakeModel) -> list[JSON]:
    """What the app sent the model in turns (title requests are not streamed)."""
    return [body for body in fake.requests if body.get("stream")]


async def upload(url: str, name: str, mime: str, data: bytes, **kwargs: Any) -> httpx.Response:
    """A multipart upload of one file in field `file` (direct: url ends in /attachments)."""
    async with httpx.AsyncClient() as http:
        return await http.post(url, files={"file": (name, data, mime)}, **kwargs)


async def uploaded(client: ChatKitClient, name: str, data: bytes) -> str:
    """A direct upload as the client's user; the new attachment's id."""
    base = client.url.removesuffix("/chatkit")
    response = await upload(base + "/attachments", name, "image/png", data, headers=client.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def rows(database_url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows straight from the database, past the app."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        cursor = await conn.execute(statement.encode(), params)
        return await cursor.fetchall() if cursor.description else []


async def hold_leases(database_url: str, user_id: str, **leases: float) -> None:
    """Stream slots of this user held elsewhere (another instance), each ending at its time."""
    await rows(
        database_url,
        "INSERT INTO user_limits (user_id, allowance, checked_at, leases)"
        " VALUES (%s, 30, now(), %s::jsonb)",
        user_id,
        json.dumps(leases),
    )


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def create_two_phase(client: ChatKitClient, name: str, mime: str, size: int) -> Any:
    params = {"name": name, "size": size, "mime_type": mime}
    return await client.request("attachments.create", params)


def last_user_parts(fake: FakeModel) -> list[JSON]:
    """The content parts of the last user message the model received (Responses API)."""
    message = [m for m in streamed_requests(fake)[-1]["input"] if m.get("role") == "user"][-1]
    return list(message["content"])
