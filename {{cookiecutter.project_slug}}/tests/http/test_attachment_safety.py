"""Attachments against hostile or careless clients.

Uploads stop at MAX_ATTACHMENT_BYTES while they are read (chunked bodies too); link tokens
never reach the logs and preview links expire, yet the links a client receives always work;
an upload link works once; attachments go with their thread and orphans with `db prune`;
a bad mime type or file name is a 400, and one stored earlier never breaks a read.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import psycopg
import pytest
from chatkit.types import FileAttachment, ImageAttachment, ThreadMetadata
from pydantic import AnyUrl

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, user_input
from {{ cookiecutter.project_slug }}.ops.logs import JsonFormatter
from {{ cookiecutter.project_slug }}.store.attachment_store import sign_url_token
from {{ cookiecutter.project_slug }}.store.db import load_migrations
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from {{ cookiecutter.project_slug }}.store.pruning import prune_orphans
from tests.support.app import TEST_AUTH_SECRET, AppServer, wait_until
from tests.support.chatkit import PNG, create_two_phase, last_user_parts, rows, uid, upload
from tests.support.commands import run_cli
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel

PACKAGE = "{{ cookiecutter.project_slug }}"
LIMIT = 2048
MIB = 1024 * 1024
BOUNDARY = b"hostile-test-boundary"
MULTIPART = {"Content-Type": "multipart/form-data; boundary=" + BOUNDARY.decode()}
OCTET = "application/octet-stream"


def part_head(filename: bytes = b"big.bin", content_type: bytes | None = OCTET.encode()) -> bytes:
    """The opening of a multipart body whose field `file` holds the bytes that follow."""
    head = b"--" + BOUNDARY + b"\r\n"
    head += b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
    if content_type is not None:
        head += b"Content-Type: " + content_type + b"\r\n"
    return head + b"\r\n"


def multipart(data: bytes, **head: Any) -> bytes:
    """A whole multipart body with one file (raw bytes: any file name or type, NUL included)."""
    return part_head(**head) + data + b"\r\n--" + BOUNDARY + b"--\r\n"


async def post_raw(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers={**(headers or {}), **MULTIPART})


async def get(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url, headers=headers)


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return str(response.json()["error"]["code"])


def content_url(server: AppServer, attachment_id: str) -> str:
    return f"{server.url}/attachments/{attachment_id}/content"


async def new_thread_with(client: ChatKitClient, *attachment_ids: str) -> str:
    events = [
        e
        async for e in client.stream(
            "threads.create", {"input": user_input("see", attachments=list(attachment_ids))}
        )
    ]
    assert not [e for e in events if e["type"] == "error"], events
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


# --- 1. uploads are checked while they are read --------------------------------------

CHUNK = 64 * 1024
CHUNKS = 1024  # 64 MiB, 32,768 times the limit


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    chunks_sent: int


async def upload_without_length(url: str, headers: dict[str, str]) -> Answer:
    """POST a chunked multipart body of up to CHUNKS chunks, reading the answer meanwhile.

    A plain socket, so the answer is seen as soon as the server sends it (httpx reads it
    only after the whole body); `chunks_sent` says how far the body had gone by then.
    """
    target = urlsplit(url)
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    lines = [
        f"POST {target.path}?{target.query} HTTP/1.1",
        f"Host: {target.netloc}",
        "Transfer-Encoding: chunked",
        *(f"{name}: {value}" for name, value in {**headers, **MULTIPART}.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = part_head()
    writer.write(f"{len(head):x}\r\n".encode() + head + b"\r\n")
    answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
    sent = 0
    data = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    try:
        while not answer.done() and sent < CHUNKS:
            writer.write(data)
            await writer.drain()
            await asyncio.sleep(0)  # let the loop see an answer (drain may not wait at all)
            sent += 1
        if not answer.done():
            tail = b"\r\n--" + BOUNDARY + b"--\r\n"
            writer.write(f"{len(tail):x}\r\n".encode() + tail + b"\r\n0\r\n\r\n")
        response_head = (await asyncio.wait_for(answer, 60)).decode("latin-1")
        length = int(response_head.lower().split("content-length:")[1].split("\r\n")[0])
        body = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
    return Answer(int(response_head.split()[1]), body, sent)


@pytest.mark.parametrize("strategy", ["two_phase", "direct"])
async def test_a_chunked_upload_is_refused_as_soon_as_it_passes_the_limit(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient], strategy: str
) -> None:
    """No Content-Length: the 413 comes as soon as the file passes the limit, while the
    client is still sending (the server does not read, spool or keep the 64 MiB first)."""
    server = app_factory(max_attachment_bytes=LIMIT)
    client = client_for(server=server)
    headers: dict[str, str] = {}
    if strategy == "two_phase":
        attachment = await create_two_phase(client, "big.bin", OCTET, 100)
        url = attachment["upload_descriptor"]["url"]
    else:
        url, headers = server.url + "/attachments", client.headers
    answer = await upload_without_length(url, headers)
    assert answer.status == 413 and answer.body["error"]["code"] == "too_large"
    assert answer.chunks_sent * CHUNK < 16 * MIB, f"answered after {answer.chunks_sent} chunks"
    if strategy == "two_phase":
        retry = await upload(url, "small.bin", OCTET, b"0123456789")
        assert retry.status_code == 200, "nothing was stored: the link still works"


async def test_an_ordinary_client_reads_the_413_after_a_chunked_upload(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    """httpx sends the whole body before it reads: the 413 JSON still reaches it intact, and
    the connection stays usable (the server discards the rest without keeping it)."""
    server = app_factory(max_attachment_bytes=LIMIT)
    client = client_for(server=server)

    async def body() -> AsyncIterator[bytes]:
        yield part_head()
        for _ in range(64):
            yield b"x" * CHUNK
        yield b"\r\n--" + BOUNDARY + b"--\r\n"

    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(
            server.url + "/attachments", content=body(), headers={**client.headers, **MULTIPART}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413 and error_code(response) == "too_large"
        after = await http.get(server.url + "/health")
    assert after.status_code == 200


async def test_a_chunked_upload_within_the_limit_is_stored(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    """The streaming reader keeps a file that arrives in many small chunks, byte for byte."""
    server = app_factory(max_attachment_bytes=LIMIT)
    client = client_for(server=server)
    data = bytes(range(256)) * 8  # exactly the limit, every byte value (CR, LF and `-` too)
    body = multipart(data, filename="naïve ✓.bin".encode())

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    async with httpx.AsyncClient() as http:
        response = await http.post(
            server.url + "/attachments", content=chunks(), headers={**client.headers, **MULTIPART}
        )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "naïve ✓.bin"
    stored = await get(content_url(server, response.json()["id"]), client.headers)
    assert stored.content == data


@pytest.mark.parametrize(
    "filename, content_type",
    [
        (b"a\x00b.txt", b"text/plain"),
        (b"a.txt", b"text/plain\x00"),
        (b"a.txt", b"te\x00xt/plain"),
        (b"a.txt", "image/😀".encode()),
        (b"a.txt", b"a"),
    ],
    ids=["nul-in-name", "nul-after-type", "nul-in-type", "emoji-type", "no-subtype"],
)
async def test_nul_in_a_file_name_or_a_bad_part_type_is_400(
    client_for: Callable[..., ChatKitClient],
    app_server: AppServer,
    filename: bytes,
    content_type: bytes,
) -> None:
    """A direct upload with a NUL in its file name or a bad Content-Type: 400, no attachment."""
    client = client_for()
    body = multipart(b"data", filename=filename, content_type=content_type)
    response = await post_raw(app_server.url + "/attachments", body, client.headers)
    assert response.status_code == 400, response.text
    assert error_code(response) in ("invalid_request", "invalid_mime_type")


async def test_nul_in_a_two_phase_file_name_is_400_and_stores_nothing(
    client_for: Callable[..., ChatKitClient],
) -> None:
    client = client_for()
    attachment = await create_two_phase(client, "a.txt", "text/plain", 4)
    url = attachment["upload_descriptor"]["url"]
    response = await post_raw(url, multipart(b"data", filename=b"a\x00.txt"))
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert (await upload(url, "a.txt", "text/plain", b"data")).status_code == 200


# --- 2. link tokens never reach the logs; preview links expire ------------------------


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == name]


async def test_link_tokens_never_reach_the_logs(app_server: AppServer) -> None:
    """The access log shows `token=***`; our own request log has no query string at all."""
    secret = "secret-" + uuid.uuid4().hex
    names = ("uvicorn.access", f"{PACKAGE}.http.middleware")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    captured = Captured()
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(captured)
    try:
        attachment_id = uid("atc")
        await get(f"{content_url(app_server, attachment_id)}?token={secret}&x=1")
        await post_raw(
            f"{app_server.url}/attachments/{attachment_id}/upload?token={secret}",
            multipart(b"data"),
        )
        logged = await wait_until(lambda: all(len(captured.named(n)) >= 2 for n in names))
        assert logged, [r.getMessage() for r in captured.records]
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(captured)
            logger.setLevel(level)
    formatter = JsonFormatter()
    for record in captured.records:
        assert secret not in formatter.format(record), formatter.format(record)
    access = [r.getMessage() for r in captured.named("uvicorn.access")]
    assert any("/content?token=***&x=***" in line for line in access), access
    assert all(
        "?" not in str(vars(r)["path"]) for r in captured.named(f"{PACKAGE}.http.middleware")
    )


def token_claims(url: str) -> dict[str, Any]:
    token = url.split("token=", 1)[1]
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def test_preview_links_expire(
    app_server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    """A preview token carries `exp` (ATTACHMENT_LINK_TTL_SECONDS, plus at most an hour);
    an expired one, or one without `exp` as stored before, opens nothing."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    attachment = await create_two_phase(client, "dot.png", "image/png", len(PNG))
    ttl = app_server.settings.attachment_link_ttl_seconds
    exp = token_claims(attachment["preview_url"])["exp"]
    assert time.time() + ttl - 5 <= exp <= time.time() + ttl + 3600
    url = attachment["upload_descriptor"]["url"]
    assert (await upload(url, "dot.png", "image/png", PNG)).status_code == 200
    assert (await get(attachment["preview_url"])).content == PNG

    expired = sign_url_token(app_server.settings, user_id, attachment["id"], "content", -1)
    key = hashlib.sha256(b"attachment-urls:" + TEST_AUTH_SECRET.encode()).hexdigest()
    claims = {"sub": user_id, "att": attachment["id"], "use": "content"}
    forever = jwt.encode(claims, key, algorithm="HS256")
    for token in (expired, forever):
        response = await get(f"{content_url(app_server, attachment['id'])}?token={token}")
        assert response.status_code == 401 and error_code(response) == "unauthorized"


async def test_stored_preview_links_are_re_signed_when_read(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], store: PostgresStore
) -> None:
    """Links stored with the thread expire, yet items.list, threads.get_by_id and the streamed
    user message always carry one that works."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    attachment = await create_two_phase(client, "dot.png", "image/png", len(PNG))
    attachment_id = attachment["id"]
    await upload(attachment["upload_descriptor"]["url"], "dot.png", "image/png", PNG)
    thread_id = await new_thread_with(client, attachment_id)

    # Age every stored copy of the link (the attachment's and the message's): expired.
    context = make_context(user_id)
    expired = sign_url_token(app_server.settings, user_id, attachment_id, "content", -1)
    expired_url = AnyUrl(f"{content_url(app_server, attachment_id)}?token={expired}")
    stored = await store.load_attachment(attachment_id, context)
    assert isinstance(stored, ImageAttachment)
    stored.preview_url = expired_url
    await store.save_attachment(stored, context)
    message = (await store.load_thread_items(thread_id, None, 1, "asc", context)).data[0]
    message.attachments[0] = stored  # type: ignore[union-attr]
    await store.save_item(thread_id, message, context)
    assert (await get(str(expired_url))).status_code == 401

    items = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    events = [
        e
        async for e in client.stream(
            "threads.add_user_message",
            {"thread_id": thread_id, "input": user_input("again", attachments=[attachment_id])},
        )
    ]
    streamed = next(
        e["item"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "user_message"
    )
    for source in (items["data"][0], thread["items"]["data"][0], streamed):
        url = source["attachments"][0]["preview_url"]
        assert url != str(expired_url)
        response = await get(url)
        assert response.status_code == 200 and response.content == PNG


# --- 3. upload links work once --------------------------------------------------------


async def test_an_upload_link_works_once(
    app_server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    """A second upload to the same link is a 409 and the first file stays."""
    client = client_for()
    attachment = await create_two_phase(client, "a.txt", "text/plain", 5)
    url = attachment["upload_descriptor"]["url"]
    assert (await upload(url, "a.txt", "text/plain", b"first")).status_code == 200
    again = await upload(url, "a.txt", "text/plain", b"other")
    assert again.status_code == 409 and error_code(again) == "already_uploaded"
    stored = await get(content_url(app_server, attachment["id"]), client.headers)
    assert stored.content == b"first"


async def test_racing_uploads_to_one_link_store_one_file(
    app_server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    """Two uploads at once: one 200, one 409, and the stored bytes are the winner's."""
    client = client_for()
    attachment = await create_two_phase(client, "a.txt", "text/plain", 5)
    url = attachment["upload_descriptor"]["url"]
    bodies = [b"one" * 1000, b"two" * 1000]
    results = await asyncio.gather(*(upload(url, "a.txt", "text/plain", b) for b in bodies))
    assert sorted(r.status_code for r in results) == [200, 409]
    winner = bodies[[r.status_code for r in results].index(200)]
    stored = await get(content_url(app_server, attachment["id"]), client.headers)
    assert stored.content == winner


# --- 4. attachments go with their thread; orphans with `db prune` ---------------------


async def test_deleting_a_thread_deletes_its_attachments_and_their_bytes(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], database_url: str
) -> None:
    client = client_for()
    image = await create_two_phase(client, "dot.png", "image/png", len(PNG))
    await upload(image["upload_descriptor"]["url"], "dot.png", "image/png", PNG)
    files = []
    for name in ("doomed.txt", "kept.txt", "orphan.txt"):
        response = await upload(
            app_server.url + "/attachments", name, "text/plain", b"text", headers=client.headers
        )
        files.append(response.json()["id"])
    doomed, kept, orphan = files
    doomed_thread = await new_thread_with(client, image["id"], doomed)
    await new_thread_with(client, kept)
    ids = [image["id"], doomed, kept, orphan]
    count = "SELECT count(*) FROM {} WHERE {} = ANY(%s)"
    assert await rows(database_url, count.format("attachment_contents", "attachment_id"), ids) == [
        (4,)
    ]

    await client.request("threads.delete", {"thread_id": doomed_thread})

    left = await rows(database_url, "SELECT id FROM attachments WHERE id = ANY(%s)", ids)
    assert sorted(r[0] for r in left) == sorted([kept, orphan])
    contents = await rows(
        database_url,
        "SELECT attachment_id FROM attachment_contents WHERE attachment_id = ANY(%s)",
        ids,
    )
    assert sorted(r[0] for r in contents) == sorted([kept, orphan])
    gone = await get(content_url(app_server, doomed), client.headers)
    assert gone.status_code == 404


async def test_an_attachment_is_tied_only_to_a_thread_of_its_owner(store: PostgresStore) -> None:
    """Naming someone else's thread ties nothing (their delete cannot reach my attachment)."""
    alice, bob = make_context(), make_context()
    bob_thread = ThreadMetadata(id=uid("thr"), created_at=datetime.now())
    await store.save_thread(bob_thread, bob)
    attachment = FileAttachment(
        id=uid("atc"), name="a", mime_type="text/plain", thread_id=bob_thread.id
    )
    await store.save_attachment(attachment, alice)
    await store.delete_thread(bob_thread.id, bob)
    assert await store.load_attachment(attachment.id, alice) == attachment


async def every_users_attachments(url: str, store: PostgresStore) -> dict[str, list[str]]:
    """For two users: an old and a new orphan, and an old attachment sent in a thread."""
    made: dict[str, list[str]] = {"old_orphans": [], "new_orphans": [], "sent": []}
    for user in ("alice", "bob"):
        context = make_context(user)
        thread = ThreadMetadata(id=uid("thr"), created_at=datetime.now())
        await store.save_thread(thread, context)
        for kind in made:
            attachment = FileAttachment(
                id=uid("atc"),
                name=f"{kind}.txt",
                mime_type="text/plain",
                thread_id=thread.id if kind == "sent" else None,
            )
            await store.save_attachment(attachment, context)
            await store.save_attachment_content(attachment.id, b"bytes", context)
            made[kind].append(attachment.id)
    old = made["old_orphans"] + made["sent"]
    backdate = "UPDATE attachments SET created_at = now() - interval '25 hours' WHERE id = ANY(%s)"
    await rows(url, backdate, old)
    return made


async def test_db_prune_removes_old_orphans_of_every_user_and_nothing_else(
    migrated_schema: tuple[str, PostgresStore], tmp_path: Path
) -> None:
    url, store = migrated_schema
    made = await every_users_attachments(url, store)

    done = await asyncio.to_thread(run_cli, tmp_path, url, "db", "prune")

    assert done.returncode == 0, done.stderr
    assert done.stdout == "removed 2 unattached attachments older than 24 hours\n"
    kept = sorted(made["new_orphans"] + made["sent"])
    assert sorted(r[0] for r in await rows(url, "SELECT id FROM attachments")) == kept
    contents = await rows(url, "SELECT attachment_id FROM attachment_contents")
    assert sorted(r[0] for r in contents) == kept
    again = await asyncio.to_thread(run_cli, tmp_path, url, "db", "prune")
    assert again.stdout == "removed 0 unattached attachments older than 24 hours\n"


async def test_prune_works_in_batches(migrated_schema: tuple[str, PostgresStore]) -> None:
    url, store = migrated_schema
    made = await every_users_attachments(url, store)
    assert await prune_orphans(url, 24, batch_size=1) == len(made["old_orphans"])
    assert await prune_orphans(url, 24, batch_size=1) == 0


async def test_migration_ties_existing_attachments_to_their_owners_threads(
    fresh_schema_url: str,
) -> None:
    """0004 sets thread_id from the payload, only for a thread the same user owns."""
    migrations = {m.version: m for m in load_migrations()}
    async with await psycopg.AsyncConnection.connect(fresh_schema_url, autocommit=True) as conn:
        for version in (1, 2, 3):
            await conn.execute(migrations[version].sql.encode())
        await conn.execute(
            b"INSERT INTO threads (id, user_id, created_at, payload)"
            b" VALUES ('thr_a', 'alice', now(), '{}')"
        )
        for attachment_id, user, thread in [
            ("a1", "alice", "thr_a"),
            ("a2", "mallory", "thr_a"),
            ("a3", "alice", None),
            ("a4", "alice", "thr_gone"),
        ]:
            payload = {} if thread is None else {"thread_id": thread}
            await conn.execute(
                b"INSERT INTO attachments (id, user_id, payload) VALUES (%s, %s, %s)",
                (attachment_id, user, psycopg.types.json.Jsonb(payload)),
            )
        await conn.execute(migrations[4].sql.encode())
        cursor = await conn.execute(b"SELECT id, thread_id FROM attachments ORDER BY id")
        assert await cursor.fetchall() == [
            ("a1", "thr_a"),
            ("a2", None),
            ("a3", None),
            ("a4", None),
        ]


# --- 5. mime types --------------------------------------------------------------------

BAD_MIME_TYPES = [
    "image/😀",
    "text/plain\r\nX-Injected: yes",
    "text/plain\n",
    "a",
    "text/",
    "/plain",
    "text/plain/x",
    "text /plain",
    "ímage/png",
    "x" * 250 + "/" + "y" * 10,
]


@pytest.mark.parametrize("mime_type", BAD_MIME_TYPES, ids=range(len(BAD_MIME_TYPES)))
async def test_a_bad_mime_type_is_400_on_create(
    client_for: Callable[..., ChatKitClient], mime_type: str
) -> None:
    client = client_for()
    with pytest.raises(ChatKitHTTPError) as refused:
        await create_two_phase(client, "a.bin", mime_type, 10)
    assert refused.value.status == 400
    assert refused.value.body["error"]["code"] == "invalid_mime_type"


@pytest.mark.parametrize(
    "given, stored",
    [
        ("image/png", "image/png"),
        ("IMAGE/PNG", "image/png"),
        ("image/svg+xml", "image/svg+xml"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("application/vnd.ms-excel", "application/vnd.ms-excel"),
        ("", "application/octet-stream"),  # what browsers send for an unknown file type
    ],
)
async def test_good_mime_types_are_kept_in_lower_case_without_parameters(
    client_for: Callable[..., ChatKitClient], given: str, stored: str
) -> None:
    attachment = await create_two_phase(client_for(), "a.bin", given, 10)
    assert attachment["mime_type"] == stored
    assert attachment["type"] == ("image" if stored.startswith("image/") else "file")


async def test_a_bad_mime_type_stored_earlier_never_breaks_a_read(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    store: PostgresStore,
    fake_model: FakeModel,
) -> None:
    """Rows written before the check: served as application/octet-stream, no header
    injection, and a message with them still gets its answer."""
    user_id = f"user-{uuid.uuid4().hex}"
    client, context = client_for(user_id), make_context(user_id)
    ids = []
    for mime_type in ("image/😀", "text/plain\r\nX-Injected: yes"):
        attachment_id = uid("atc")
        preview = AnyUrl(f"{content_url(app_server, attachment_id)}?token=old")
        await store.save_attachment(
            ImageAttachment(id=attachment_id, name="x", mime_type=mime_type, preview_url=preview),
            context,
        )
        await store.save_attachment_content(attachment_id, b"bytes", context)
        ids.append(attachment_id)
        response = await get(content_url(app_server, attachment_id), client.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == OCTET
        assert response.headers["content-disposition"] == "attachment"
        assert "x-injected" not in response.headers

    thread_id = await new_thread_with(client, *ids)
    items = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    assert [a["mime_type"] for a in items["data"][0]["attachments"]] == [OCTET, OCTET]
    assert all(part["type"] == "input_text" for part in last_user_parts(fake_model))
