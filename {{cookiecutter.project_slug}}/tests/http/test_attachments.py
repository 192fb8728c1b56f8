"""Attachments end to end: two-phase and direct uploads, the model sees them, owners only."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, user_input
from tests.support.app import AppServer
from tests.support.chatkit import PNG, create_two_phase, last_user_parts, upload
from tests.support.fake_openai import FakeModel


async def test_two_phase_image_upload_reaches_the_model(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for()
    attachment = await create_two_phase(client, "dot.png", "image/png", len(PNG))
    assert attachment["type"] == "image" and attachment["upload_descriptor"]["method"] == "POST"

    uploaded = await upload(attachment["upload_descriptor"]["url"], "dot.png", "image/png", PNG)
    assert uploaded.status_code == 200, uploaded.text
    assert "upload_descriptor" not in uploaded.json()

    async with httpx.AsyncClient() as http:
        preview = await http.get(attachment["preview_url"])
    assert preview.status_code == 200 and preview.content == PNG
    assert preview.headers["content-type"] == "image/png"

    events = [
        e
        async for e in client.stream(
            "threads.create", {"input": user_input("what is this?", attachments=[attachment["id"]])}
        )
    ]
    assert not [e for e in events if e["type"] == "error"]
    parts = last_user_parts(fake_model)
    assert parts[0] == {"type": "input_text", "text": "what is this?"}
    assert parts[1]["type"] == "input_image"
    assert parts[1]["image_url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()

    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    items = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    assert items["data"][0]["attachments"][0]["id"] == attachment["id"]


async def test_direct_upload_of_a_text_file(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for()
    response = await upload(
        app_server.url + "/attachments",
        "notes.txt",
        "text/plain",
        b"the answer is 42",
        headers=client.headers,
    )
    assert response.status_code == 200, response.text
    attachment = response.json()
    assert attachment["type"] == "file" and attachment["name"] == "notes.txt"
    await client.send("summarise", attachments=[attachment["id"]])
    assert last_user_parts(fake_model)[1] == {
        "type": "input_text",
        "text": "[Attached file 'notes.txt']\nthe answer is 42",
    }

    async with httpx.AsyncClient() as http:
        own = await http.get(
            f"{app_server.url}/attachments/{attachment['id']}/content", headers=client.headers
        )
        other = client_for()
        foreign = await http.get(
            f"{app_server.url}/attachments/{attachment['id']}/content", headers=other.headers
        )
    assert own.content == b"the answer is 42"
    assert own.headers["content-disposition"] == "attachment"
    assert foreign.status_code == 404


async def test_links_open_only_what_they_were_made_for(
    app_server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    client = client_for()
    attachment = await create_two_phase(client, "a.png", "image/png", len(PNG))
    upload_url = attachment["upload_descriptor"]["url"]
    upload_token = upload_url.split("token=")[1]
    preview_token = attachment["preview_url"].split("token=")[1]

    assert (await upload(upload_url + "x", "a.png", "image/png", PNG)).status_code == 401
    swapped = upload_url.split("?")[0] + "?token=" + preview_token
    assert (await upload(swapped, "a.png", "image/png", PNG)).status_code == 401
    other = await create_two_phase(client, "b.png", "image/png", len(PNG))
    other_url = other["upload_descriptor"]["url"].split("?")[0] + "?token=" + upload_token
    assert (await upload(other_url, "b.png", "image/png", PNG)).status_code == 401

    async with httpx.AsyncClient() as http:
        as_bearer = await http.post(
            client.url,
            json={"type": "threads.list", "params": {}},
            headers={"Authorization": f"Bearer {upload_token}"},
        )
    assert as_bearer.status_code == 401, "a link token is never a bearer token"


async def test_size_limits_and_delete(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    server = app_factory(max_attachment_bytes=2048)
    client = client_for(server=server)
    with pytest.raises(ChatKitHTTPError) as too_big:
        await create_two_phase(client, "big.bin", "application/octet-stream", 4096)
    assert too_big.value.status == 413

    attachment = await create_two_phase(client, "small.txt", "text/plain", 10)
    url = attachment["upload_descriptor"]["url"]
    assert (await upload(url, "small.txt", "text/plain", b"x" * 4096)).status_code == 413
    assert (await upload(url, "small.txt", "text/plain", b"0123456789")).status_code == 200

    other = client_for(server=server)
    with pytest.raises(ChatKitHTTPError) as foreign:
        await other.request("attachments.delete", {"attachment_id": attachment["id"]})
    assert foreign.value.status == 404

    await client.request("attachments.delete", {"attachment_id": attachment["id"]})
    async with httpx.AsyncClient() as http:
        gone = await http.get(
            f"{server.url}/attachments/{attachment['id']}/content", headers=client.headers
        )
    assert gone.status_code == 404


async def test_upload_needs_a_multipart_file(
    app_server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    client = client_for()
    async with httpx.AsyncClient() as http:
        raw = await http.post(
            app_server.url + "/attachments", content=b"raw", headers=client.headers
        )
        anonymous = await http.post(app_server.url + "/attachments", files={"file": ("a", b"a")})
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_request"
    assert anonymous.status_code == 401
