"""Uploads bounded over HTTP: per minute, running at once per user (across instances), bytes
kept per user, bytes this instance receives at once; and the app's memory under 16 parallel
20 MiB uploads (its own process, RSS read from /proc)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from tests.support.app import TEST_AUTH_SECRET, AppServer
from tests.support.chatkit import json_error, rows, upload
from tests.support.commands import PACKAGE, run_cli
from tests.support.processes import ServerProcess
from tests.support.s3 import S3Server

MIB = 1024 * 1024


def user_token(app: AppServer) -> tuple[str, dict[str, str]]:
    user_id = f"user-{uuid.uuid4().hex}"
    return user_id, {"Authorization": f"Bearer {app.token(user_id)}"}


async def test_uploads_per_minute(app_factory: Callable[..., AppServer]) -> None:
    app = app_factory(rate_limit_uploads_per_minute=2)
    user_id, headers = user_token(app)
    for _ in range(2):
        done = await upload(f"{app.url}/attachments", "a.txt", "text/plain", b"x", headers=headers)
        assert done.status_code == 200, done.text
    refused = await upload(f"{app.url}/attachments", "a.txt", "text/plain", b"x", headers=headers)
    json_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    client = ChatKitClient(app.url, app.token(user_id))
    created = await client.http.post(
        client.url,
        json={
            "type": "attachments.create",
            "params": {"name": "a", "size": 1, "mime_type": "text/plain"},
        },
        headers=client.headers,
    )  # fmt: skip
    json_error(created, 429, "rate_limited")
    await client.aclose()


async def test_uploads_running_at_once_count_across_instances(
    app_factory: Callable[..., AppServer], database_url: str
) -> None:
    app = app_factory()
    user_id, headers = user_token(app)
    # Two uploads of this user running on other instances, for another minute.
    later = time.time() + 60
    leases = {"one": [later, 1000], "two": [later, 1000]}
    await rows(
        database_url,
        "INSERT INTO user_limits (user_id, allowance, checked_at, uploads)"
        " VALUES (%s, 0, now(), %s)",
        user_id,
        json.dumps(leases),
    )
    refused = await upload(f"{app.url}/attachments", "a.txt", "text/plain", b"x", headers=headers)
    json_error(refused, 429, "too_many_uploads")
    assert 1 <= int(refused.headers["Retry-After"]) <= 5
    shown = run_cli(Path.cwd(), database_url, "users", "show", user_id, "--json")
    assert shown.returncode == 0, shown.stderr
    figures = json.loads(shown.stdout)
    assert figures["uploads_in_flight"] == 2 and figures["max_uploads_in_flight"] == 2
    await rows(database_url, "UPDATE user_limits SET uploads = '{}' WHERE user_id = %s", user_id)
    done = await upload(f"{app.url}/attachments", "a.txt", "text/plain", b"x", headers=headers)
    assert done.status_code == 200, done.text


async def test_storage_quota(app_factory: Callable[..., AppServer], database_url: str) -> None:
    app = app_factory(user_storage_bytes=100_000)
    user_id, headers = user_token(app)
    first = await upload(
        f"{app.url}/attachments",
        "a.bin",
        "application/octet-stream",
        b"a" * 60_000,
        headers=headers,
    )
    assert first.status_code == 200, first.text
    second = await upload(
        f"{app.url}/attachments",
        "b.bin",
        "application/octet-stream",
        b"b" * 60_000,
        headers=headers,
    )
    json_error(second, 413, "storage_quota_exceeded")
    shown = run_cli(Path.cwd(), database_url, "users", "show", user_id)
    assert shown.returncode == 0, shown.stderr
    # (the command's own settings: the default quota)
    assert "storage: 60,000 bytes in 1 attachments of 1,073,741,824" in shown.stdout, shown.stdout
    # Deleting frees the room.
    client = ChatKitClient(app.url, app.token(user_id))
    await client.request("attachments.delete", {"attachment_id": first.json()["id"]})
    await client.aclose()
    third = await upload(
        f"{app.url}/attachments",
        "b.bin",
        "application/octet-stream",
        b"b" * 60_000,
        headers=headers,
    )
    assert third.status_code == 200, third.text


async def test_bytes_received_at_once_by_one_instance(
    app_factory: Callable[..., AppServer],
) -> None:
    app = app_factory(max_upload_bytes_in_flight=1 * MIB)
    _user, headers = user_token(app)
    host, port = app.url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)))
    try:  # an upload of 900 kB that has sent its headers and waits
        slow.sendall(
            (
                f"POST /attachments HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {headers['Authorization']}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 900000\r\n\r\n--b\r\n"
            ).encode()
        )
        await asyncio.sleep(0.5)
        _other, other_headers = user_token(app)
        busy = await upload(
            f"{app.url}/attachments",
            "a.bin",
            "application/octet-stream",
            b"a" * 300_000,
            headers=other_headers,
        )
        json_error(busy, 503, "uploads_busy")
        assert busy.headers["Retry-After"] == "2"
    finally:
        slow.close()
    await asyncio.sleep(0.5)
    done = await upload(
        f"{app.url}/attachments",
        "a.bin",
        "application/octet-stream",
        b"a" * 300_000,
        headers=headers,
    )
    assert done.status_code == 200, done.text


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


async def send_file(http: httpx.AsyncClient, url: str, token: str, size: int) -> tuple[int, float]:
    """A multipart upload of `size` bytes made as it is sent (the test holds none of it)."""
    boundary = "memtest"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        chunk = b"z" * (256 * 1024)
        for _ in range(size // len(chunk)):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    started = time.monotonic()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    try:
        response = await http.post(f"{url}/attachments", content=body(), headers=headers)
        status = response.status_code
    except httpx.HTTPError:  # refused before the body was sent: the server closed
        status = -1
    return status, time.monotonic() - started


async def parallel_uploads(
    database_url: str, env: dict[str, str], users: int, label: str
) -> tuple[list[tuple[int, float]], int]:
    """16 parallel 20 MiB uploads against `serve` in its own process: their (status, seconds)
    and the app's RSS growth in KiB (peak during, less the RSS before)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    full |= {"DATABASE_URL": database_url, "AUTH_SECRET": TEST_AUTH_SECRET, "LOG_LEVEL": "INFO"}
    full |= {"MAX_ATTACHMENT_BYTES": str(32 * MIB), "RATE_LIMIT_UPLOADS_PER_MINUTE": "0"} | env
    app = ServerProcess([sys.executable, "-m", PACKAGE, "serve", "--port", "0"], env=full)
    try:
        await app.started(60)
        from {{ cookiecutter.project_slug }}.context import create_token
        from {{ cookiecutter.project_slug }}.settings import Settings

        settings = Settings(
            _env_file=None, auth_secret=SecretStr(TEST_AUTH_SECRET), database_url=database_url
        )  # type: ignore[call-arg]
        tokens = [create_token(f"mem-{uuid.uuid4().hex}", settings=settings) for _ in range(users)]
        async with httpx.AsyncClient(timeout=120) as http:
            await send_file(http, app.url, tokens[0], 256 * 1024)  # warm: every import done
            before = rss_kib(app.proc.pid)
            results = await asyncio.gather(
                *(send_file(http, app.url, tokens[i % users], 20 * MIB) for i in range(16))
            )
        peak = rss_kib(app.proc.pid, "VmHWM")
        growth = max(peak - before, 0)
        statuses = sorted(status for status, _ in results)
        print(
            f"\n{label}: 16 parallel 20 MiB uploads, statuses {statuses}: "
            f"RSS {before // 1024} MB before, peak {peak // 1024} MB, growth {growth // 1024} MB"
        )
        return list(results), growth
    finally:
        app.stop()


async def test_sixteen_parallel_uploads_of_one_user_mostly_refused_quickly(
    database_url: str,
) -> None:
    results, growth = await parallel_uploads(database_url, {}, users=1, label="postgres, one user")
    accepted = [seconds for status, seconds in results if status == 200]
    refused = [seconds for status, seconds in results if status != 200]
    assert 1 <= len(accepted) <= 2, results
    # Refused by the user's cap (429) or this instance's (503: unsized bodies reserve the most
    # they may bring), without reading their 20 MiB.
    assert all(status in (429, 503, -1) for status, _ in results if status != 200), results
    assert max(refused) < 3, results
    assert growth < 150 * 1024


@pytest.mark.usefixtures("s3_storage")
async def test_sixteen_parallel_uploads_of_sixteen_users_into_s3(
    database_url: str, s3_storage: S3Server
) -> None:
    env = {
        "ATTACHMENT_STORAGE": s3_storage.storage("memory"),
        "S3_ENDPOINT_URL": s3_storage.endpoint,
        "MAX_UPLOAD_BYTES_IN_FLIGHT": "0",
    }
    results, growth = await parallel_uploads(database_url, env, users=16, label="s3, 16 users")
    assert [status for status, _ in results] == [200] * 16, results
    assert growth < 150 * 1024, f"RSS grew {growth // 1024} MB"
