"""The operator's side of ATTACHMENT_STORAGE against a real S3 server (SeaweedFS on loopback):
the start-up check, `attachments move` both ways and twice, and the sweep of `db prune`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from {{ cookiecutter.project_slug }}.settings import Settings
from {{ cookiecutter.project_slug }}.store.blob_storage import bucket_and_prefix, open_blob_storage, sweep_objects
from {{ cookiecutter.project_slug }}.store.db import connect
from tests.support.app import AppServer, bearer
from tests.support.chatkit import rows, upload
from tests.support.s3 import S3Server, has_object, run_cli_with, s3_client, user_id_of

pytestmark = pytest.mark.usefixtures("s3_storage")


async def test_the_sweep_removes_objects_no_row_names(s3_app: AppServer, database_url: str) -> None:
    blobs = open_blob_storage(s3_app.settings)
    assert blobs is not None
    stray = f"attachments/att_stray_{uuid.uuid4().hex}"
    await blobs.put(stray, b"left by a crash", "text/plain")
    kept_user = s3_client(s3_app)
    kept = await upload(
        f"{s3_app.url}/attachments", "k.txt", "text/plain", b"kept", headers=kept_user.headers
    )
    async with await connect(database_url) as conn:
        assert await sweep_objects(conn, blobs) == 0  # younger than a day: maybe still uploading
        assert await sweep_objects(conn, blobs, age=timedelta(0)) >= 1
    assert not await blobs.exists(stray)
    assert await blobs.exists(f"attachments/{kept.json()['id']}")


async def test_attachments_move_both_ways_and_twice(
    app_factory: Callable[..., AppServer], s3_storage: S3Server, database_url: str, tmp_path: Path
) -> None:
    postgres_app = app_factory()
    user = s3_client(postgres_app)
    data = b"moved " * 1000
    made = await upload(
        f"{postgres_app.url}/attachments", "m.txt", "text/plain", data, headers=user.headers
    )
    attachment_id = made.json()["id"]
    env = {
        "ATTACHMENT_STORAGE": s3_storage.storage(f"move-{uuid.uuid4().hex[:6]}"),
        "S3_ENDPOINT_URL": s3_storage.endpoint,
    }

    def move(to: str) -> dict[str, object]:
        done = run_cli_with(
            tmp_path, database_url, env, "attachments", "move", "--to", to, "--json"
        )
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    first = await asyncio.to_thread(move, "s3")
    assert first["moved"]["attachments"] >= 1  # type: ignore[index]
    assert (await asyncio.to_thread(move, "s3"))["moved"] == {"attachments": 0, "images": 0}
    key = await rows(
        database_url, "SELECT object_key FROM attachments WHERE id = %s", attachment_id
    )
    assert key == [(f"attachments/{attachment_id}",)]
    s3_app = app_factory(
        attachment_storage=env["ATTACHMENT_STORAGE"], s3_endpoint_url=s3_storage.endpoint
    )
    async with httpx.AsyncClient() as http:
        got = await http.get(
            f"{s3_app.url}/attachments/{attachment_id}/content",
            headers=bearer(s3_app.token(user_id_of(user))),
            follow_redirects=True,
        )
    assert got.content == data

    back = await asyncio.to_thread(move, "postgres")
    assert back["moved"]["attachments"] >= 1  # type: ignore[index]
    assert (await asyncio.to_thread(move, "postgres"))["moved"] == {"attachments": 0, "images": 0}
    assert not await has_object(s3_app, f"attachments/{attachment_id}")
    async with httpx.AsyncClient() as http:
        got = await http.get(
            f"{postgres_app.url}/attachments/{attachment_id}/content", headers=user.headers
        )
    assert got.content == data


def test_settings_name_the_bucket_and_never_a_key() -> None:
    secret = SecretStr("x" * 5 + uuid.uuid4().hex)
    settings = Settings(_env_file=None, auth_secret=secret, attachment_storage="s3://b/p/q")  # type: ignore[call-arg]
    assert bucket_and_prefix(settings) == ("b", "p/q")
    with pytest.raises(ValueError):
        Settings(_env_file=None, auth_secret=secret, attachment_storage="s3://key:secret@b/p")  # type: ignore[call-arg]


def test_serve_says_in_one_line_when_the_bucket_cannot_be_used(
    database_url: str, tmp_path: Path
) -> None:
    secret = "do-not-print-this-secret-value"
    env = {
        "ATTACHMENT_STORAGE": "s3://nowhere/prefix",
        "S3_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    done = run_cli_with(tmp_path, database_url, env, "serve", "--port", "0")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: attachment storage s3://nowhere/prefix")
    assert secret not in done.stderr + done.stdout
