"""Generated images (IMAGE_GENERATION=true, Responses API), end to end over HTTP.

The bytes go to table generated_images (never base64 in the item), the item's URL is a signed,
expiring link the app serves (re-signed on read; tampered or expired: 401), partial images
stream as updates with links of their own, the image reaches the model in a later turn within
MAX_MODEL_INPUT_BYTES, and it is deleted with its thread.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import jwt
import psycopg
from chatkit.types import GeneratedImage, GeneratedImageItem, ThreadMetadata

from {{ cookiecutter.project_slug }}.chat.history import HistoryConverter
from {{ cookiecutter.project_slug }}.chat.inline_files import inline_cost
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store.attachment_store import _url_key
from {{ cookiecutter.project_slug }}.store.image_store import GeneratedImageStore, image_id_in, new_image_id
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support.app import AppServer, app_settings
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel
from tests.support.fake_outputs import TINY_PNG

JSON = dict[str, Any]
IMAGES: JSON = {"image_generation": True}
DRAW = "draw a cat @tool image_generation"


def errors(events: list[JSON]) -> list[JSON]:
    return [e for e in events if e["type"] == "error"]


def thread_id_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


async def image_rows(database_url: str, thread_id: str) -> list[tuple[str, str, bytes]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT id, mime_type, content FROM generated_images WHERE thread_id = %s", (thread_id,)
        )
        return [(row[0], row[1], bytes(row[2])) for row in await cursor.fetchall()]


async def test_a_generated_image_is_stored_and_served_by_a_signed_link(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    server = app_factory(**IMAGES)
    client = client_for(server=server)
    events = await client.send(DRAW)
    assert not errors(events), errors(events)

    added = [e for e in events if e["type"] == "thread.item.added"]
    assert added[0]["item"]["type"] == "generated_image" and added[0]["item"].get("image") is None
    partials = [
        e["update"]
        for e in events
        if e["type"] == "thread.item.updated" and e["update"]["type"] == "generated_image.updated"
    ]
    assert [p["progress"] for p in partials] == [0.0, 0.5]  # two partial images of two
    assert [p["image"]["url"].rsplit("&", 1)[1] for p in partials] == ["partial=0", "partial=1"]
    (done,) = [
        e["item"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "generated_image"
    ]
    url = done["image"]["url"]
    assert url.startswith(f"{server.url}/images/img_") and "?token=" in url and "partial" not in url
    assert "base64" not in str(events)

    thread_id = thread_id_of(events)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT payload::text FROM thread_items WHERE thread_id = %s AND payload->>'type' = "
            "'generated_image'",
            (thread_id,),
        )
        ((payload,),) = await cursor.fetchall()
    assert "data:" not in payload and len(payload) < 1000, "the item holds a link, not the bytes"
    ((image_id, mime_type, content),) = await image_rows(database_url, thread_id)
    assert (image_id, mime_type, content) == (image_id_in(url), "image/png", TINY_PNG)
    served = await client.http.get(url)
    assert served.status_code == 200 and served.content == TINY_PNG
    assert served.headers["content-type"] == "image/png"
    for partial in partials:  # each partial link serves the image too (the newest bytes)
        assert (await client.http.get(partial["image"]["url"])).status_code == 200

    items = (await client.request("items.list", {"thread_id": thread_id}))["data"]
    (item,) = [i for i in items if i["type"] == "generated_image"]
    assert image_id_in(item["image"]["url"]) == image_id  # re-signed on read, same image
    assert (await client.http.get(item["image"]["url"])).content == TINY_PNG


async def test_tampered_expired_and_foreign_links_are_refused(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    server = app_factory(**IMAGES)
    client = client_for(server=server)
    events = await client.send(DRAW)
    (url,) = [
        e["item"]["image"]["url"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "generated_image"
    ]
    path, token = url.split("?token=")
    key = _url_key(server.settings)
    claims = jwt.decode(token, key, algorithms=["HS256"])
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, key, algorithm="HS256")
    other_image = jwt.encode({**claims, "att": new_image_id()}, key, algorithm="HS256")
    as_content = jwt.encode({**claims, "use": "content"}, key, algorithm="HS256")
    async with httpx.AsyncClient() as http:
        for bad in (
            f"{path}?token={token[:-2]}xx",  # tampered signature
            f"{path}?token={expired}",
            f"{path}?token={other_image}",  # a token for another image
            f"{path}?token={as_content}",  # an attachment preview token
            path,  # no token
            f"{path}x?token={token}",  # another image's path
        ):
            response = await http.get(bad)
            assert response.status_code == 401, (bad, response.status_code)
            assert response.json()["error"]["code"] == "unauthorized"
        # The owner's bearer token opens nothing here: links only.
        bearer = {"Authorization": f"Bearer {server.token('someone')}"}
        assert (await http.get(path, headers=bearer)).status_code == 401


async def test_the_image_reaches_the_model_in_a_later_turn(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    client = client_for(server=app_factory(**IMAGES))
    events = await client.send(DRAW)
    fake_model.reset()
    await client.send("make it blue", thread_id_of(events))
    body = next(b for b in fake_model.requests if b.get("stream"))
    images = [
        part["image_url"]
        for item in body["input"]
        if isinstance(item.get("content"), list)
        for part in item["content"]
        if part.get("type") == "input_image"
    ]
    assert images == [f"data:image/png;base64,{base64.b64encode(TINY_PNG).decode()}"]


async def test_images_share_the_model_input_budget(store: PostgresStore, database_url: str) -> None:
    """Within MAX_MODEL_INPUT_BYTES the newest images go inline, older ones become notes."""
    context = make_context()
    thread = ThreadMetadata(id=f"thr_{new_image_id()}", created_at=datetime.now())
    await store.save_thread(thread, context)
    images = GeneratedImageStore(store, app_settings(database_url, "http://x/v1"))
    items = []
    for n in range(3):
        image_id = new_image_id()
        await images.save(image_id, thread.id, TINY_PNG, context)
        url = f"http://app/images/{image_id}?token=t"  # the converter reads the id only
        items.append(
            GeneratedImageItem(
                id=f"img_item_{n}",
                thread_id=thread.id,
                created_at=datetime.now(),
                image=GeneratedImage(id=f"ig_{n}", url=url),
            )
        )
    budget = 2 * inline_cost(len(TINY_PNG)) + 500  # two inline, and three notes
    converted = await HistoryConverter(store, context, budget, images).to_agent_input(items)
    kinds = [
        "image" if isinstance(item["content"], list) else item["content"] for item in converted
    ]
    assert kinds[1:] == ["image", "image"]  # the two newest fit
    assert str(kinds[0]).startswith("[An image generated earlier (69 bytes); not resent]")

    other = make_context()  # another user's images never load
    foreign = await HistoryConverter(store, other, budget, images).to_agent_input(items)
    assert all("no longer stored" in str(item["content"]) for item in foreign)


async def test_images_are_deleted_with_their_thread(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    client = client_for(server=app_factory(**IMAGES))
    thread_id = thread_id_of(await client.send(DRAW))
    assert await image_rows(database_url, thread_id)
    await client.request("threads.delete", {"thread_id": thread_id})
    assert await image_rows(database_url, thread_id) == []
