"""ATTACHMENT_STORAGE=s3://...: uploads stream into a real S3 server (SeaweedFS on loopback),
previews are presigned links to it, the model gets the bytes, and every delete removes them."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from tests.support.app import AppServer
from tests.support.chatkit import (
    PNG,
    create_two_phase,
    last_user_parts,
    rows,
    streamed_requests,
    upload,
)
from tests.support.fake_openai import FakeModel
from tests.support.s3 import S3Server, has_object, run_cli_with, s3_client, user_id_of

pytestmark = pytest.mark.usefixtures("s3_storage")


async def test_both_uploads_land_in_the_bucket_and_reach_the_model(
    s3_app: AppServer, fake_model: FakeModel, database_url: str
) -> None:
    user = s3_client(s3_app)
    direct = await upload(
        f"{s3_app.url}/attachments",
        "notes.txt",
        "text/plain",
        b"the answer is 42",
        headers=user.headers,
    )
    assert direct.status_code == 200, direct.text
    created = await create_two_phase(user, "dot.png", "image/png", len(PNG))
    two_phase = await upload(created["upload_descriptor"]["url"], "dot.png", "image/png", PNG)
    assert two_phase.status_code == 200, two_phase.text

    ids = [direct.json()["id"], created["id"]]
    for attachment_id in ids:
        assert await has_object(s3_app, f"attachments/{attachment_id}")
    stored = await rows(
        database_url, "SELECT count(*) FROM attachment_contents WHERE attachment_id = ANY(%s)", ids
    )
    assert stored == [(0,)]  # the bytes are in the bucket only

    preview = two_phase.json()["preview_url"]
    assert (
        preview.startswith(s3_app.settings.s3_endpoint_url or "") and "X-Amz-Signature" in preview
    )
    async with httpx.AsyncClient() as http:
        fetched = await http.get(preview)
        via_app = await http.get(
            f"{s3_app.url}/attachments/{ids[0]}/content",
            headers=user.headers,
            follow_redirects=True,
        )
    assert fetched.status_code == 200 and fetched.content == PNG
    assert via_app.status_code == 200 and via_app.content == b"the answer is 42"

    events = [
        e
        async for e in user.stream(
            "threads.create", {"input": user_input("what is this?", attachments=ids)}
        )
    ]
    assert not [e for e in events if e["type"] == "error"], events
    parts = last_user_parts(fake_model)
    assert "the answer is 42" in json.dumps(parts)
    assert {
        "type": "input_image",
        "image_url": "data:image/png;base64," + base64.b64encode(PNG).decode(),
        "detail": "auto",
    } in parts or any(
        p.get("image_url") == "data:image/png;base64," + base64.b64encode(PNG).decode()
        for p in parts
    )


async def test_too_large_is_refused_while_reading_and_leaves_nothing(
    app_factory: Callable[..., AppServer], s3_storage: S3Server
) -> None:
    app = app_factory(
        attachment_storage=s3_storage.storage("small"),
        s3_endpoint_url=s3_storage.endpoint,
        max_attachment_bytes=6 * 1024 * 1024,
    )
    user = s3_client(app)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(12):  # 12 MiB, past the 6 MiB limit (past one 5 MiB part too)
            yield b"x" * (1024 * 1024)

    boundary = "b0undary"

    async def multipart() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        async for chunk in body():
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {**user.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with httpx.AsyncClient(timeout=30) as http:
        try:
            response = await http.post(
                f"{app.url}/attachments", content=multipart(), headers=headers
            )
            assert response.status_code == 413, response.text
        except httpx.HTTPError:
            pass  # the app may answer and close before the client finished sending
    left = await rows(
        app.settings.database_url, "SELECT id FROM attachments WHERE user_id = %s", user_id_of(user)
    )
    assert left == []
    assert s3_storage.files("small/attachments") == []
    assert s3_storage.multipart_uploads() == []


async def test_a_client_gone_mid_upload_leaves_no_multipart_upload(
    s3_app: AppServer, s3_storage: S3Server
) -> None:
    user = s3_client(s3_app)
    host, port = s3_app.url.removeprefix("http://").split(":")
    boundary = "gone"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    total = 15 * 1024 * 1024
    request = (
        f"POST /attachments HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: {user.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n"
    ).encode()

    def send_part_and_leave() -> None:
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(request + head)
            for _ in range(11):  # 11 MiB: two parts sent, the multipart upload begun
                sock.sendall(b"y" * (1024 * 1024))

    before = set(s3_storage.multipart_uploads())
    await asyncio.to_thread(send_part_and_leave)

    async def settled() -> bool:
        await asyncio.sleep(0.2)
        return set(s3_storage.multipart_uploads()) <= before

    for _ in range(50):
        if await settled():
            break
    assert set(s3_storage.multipart_uploads()) <= before
    left = await rows(
        s3_app.settings.database_url,
        "SELECT object_key FROM attachments WHERE user_id = %s",
        user_id_of(user),
    )
    assert all(key is None for (key,) in left)


async def test_every_delete_removes_the_objects(
    s3_app: AppServer, fake_model: FakeModel, database_url: str, tmp_path: Path
) -> None:
    async def uploaded(user: ChatKitClient) -> str:
        response = await upload(
            f"{s3_app.url}/attachments", "a.txt", "text/plain", b"bytes", headers=user.headers
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    user = s3_client(s3_app)
    # attachments.delete
    first = await uploaded(user)
    await user.request("attachments.delete", {"attachment_id": first})
    assert not await has_object(s3_app, f"attachments/{first}")
    # threads.delete
    second = await uploaded(user)
    events = [
        e
        async for e in user.stream(
            "threads.create", {"input": user_input("hi", attachments=[second])}
        )
    ]
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    await user.request("threads.delete", {"thread_id": thread_id})
    assert not await has_object(s3_app, f"attachments/{second}")
    # db prune (an attachment never sent, older than ATTACHMENT_ORPHAN_HOURS)
    third = await uploaded(user)
    await rows(
        database_url,
        "UPDATE attachments SET created_at = now() - interval '2 days' WHERE id = %s",
        third,
    )
    env_storage = {
        "ATTACHMENT_STORAGE": s3_app.settings.attachment_storage,
        "S3_ENDPOINT_URL": s3_app.settings.s3_endpoint_url or "",
    }
    pruned = await asyncio.to_thread(
        run_cli_with, tmp_path, database_url, env_storage, "db", "prune", "--json"
    )
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["removed"]["objects"] >= 1
    assert not await has_object(s3_app, f"attachments/{third}")
    # users delete
    other = s3_client(s3_app)
    fourth = await uploaded(other)
    exported = await asyncio.to_thread(
        run_cli_with, tmp_path, database_url, env_storage, "users", "export", user_id_of(other)
    )
    assert exported.returncode == 0, exported.stderr
    files = json.loads(exported.stdout)["attachments"]
    assert [base64.b64decode(f["content_base64"]) for f in files] == [b"bytes"]  # from the bucket
    deleted = await asyncio.to_thread(
        run_cli_with,
        tmp_path,
        database_url,
        env_storage,
        "users",
        "delete",
        user_id_of(other),
        "--yes",
    )
    assert deleted.returncode == 0, deleted.stderr
    assert not await has_object(s3_app, f"attachments/{fourth}")
    assert await rows(database_url, "SELECT count(*) FROM object_deletions") == [(0,)]


async def test_generated_images_go_to_the_bucket_and_leave_with_their_thread(
    app_factory: Callable[..., AppServer],
    s3_storage: S3Server,
    fake_model: FakeModel,
    database_url: str,
) -> None:
    app = app_factory(
        attachment_storage=s3_storage.storage("images"),
        s3_endpoint_url=s3_storage.endpoint,
        image_generation=True,
    )
    user = s3_client(app)
    events = await user.send("draw a cat @tool image_generation")
    assert not [e for e in events if e["type"] == "error"], events
    (done,) = [
        e["item"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "generated_image"
    ]
    image_id = done["image"]["url"].partition("/images/")[2].partition("?")[0]
    stored = await rows(
        database_url, "SELECT content, object_key FROM generated_images WHERE id = %s", image_id
    )
    assert stored == [(None, f"images/{image_id}")]
    async with httpx.AsyncClient() as http:
        served = await http.get(done["image"]["url"], follow_redirects=True)
    assert served.status_code == 200 and served.content[:4] == b"\x89PNG"
    # A later turn sends it to the model, read from the bucket.
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    await user.send("and now?", thread_id=thread_id)
    assert base64.b64encode(served.content).decode() in json.dumps(
        streamed_requests(fake_model)[-1]
    )
    await user.request("threads.delete", {"thread_id": thread_id})
    assert not await has_object(app, f"images/{image_id}")
