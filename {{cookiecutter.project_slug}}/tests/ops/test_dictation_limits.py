"""Dictation is limited (RATE_LIMIT_TRANSCRIPTIONS_PER_MINUTE, 429 with Retry-After before the
provider is called) and metered (one `usage` row per transcription, in `usage report`)."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from {{ cookiecutter.project_slug }}.store.usage_rows import usage_report
from tests.support.app import AppServer
from tests.support.commands import run_cli
from tests.support.fake_openai import FakeModel, Fault


async def rows(url: str, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(statement, params)
        return await cursor.fetchall() if cursor.description else []


async def transcribe(client: ChatKitClient, size: int) -> httpx.Response:
    params = {"audio_base64": base64.b64encode(b"\x02" * size).decode(), "mime_type": "audio/ogg"}
    body = {"type": "input.transcribe", "params": params}
    return await client.http.post(client.url, json=body, headers=client.headers)


async def test_transcriptions_over_the_limit_get_429_before_the_provider(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """Three a minute: the fourth is a 429 JSON `rate_limited` with Retry-After (about a
    third of a minute), and never reaches the provider; another user is not affected."""
    server = app_factory(rate_limit_transcriptions_per_minute=3)
    client = client_for(server=server)
    for _ in range(3):
        assert (await transcribe(client, 500)).status_code == 200
    refused = await transcribe(client, 500)

    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith("application/json")
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"] == "too many transcriptions: at most 3 a minute"
    seconds = int(refused.headers["retry-after"])
    assert 15 <= seconds <= 20 and error["retry_after"] == seconds
    assert len(fake_model.transcriptions) == 3
    assert (await transcribe(client_for(server=server), 500)).status_code == 200
    messages = await client.send("typing still works")
    assert messages[-1]["type"] != "error"


async def test_0_turns_the_limit_off(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    server = app_factory(rate_limit_transcriptions_per_minute=0)
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    answers = await asyncio.gather(*(transcribe(client, 300) for _ in range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    query = "SELECT count(*) FROM user_limits WHERE user_id = %s AND buckets ? 'transcriptions'"
    assert await rows(database_url, query, (user_id,)) == [(0,)]


async def test_each_transcription_is_recorded_in_usage(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """Model, audio bytes and the provider's tokens; no thread; not in the daily budget."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id)
    fake_model.transcript = "three words here"
    assert (await transcribe(client, 1500)).status_code == 200
    assert (await transcribe(client, 700)).status_code == 200
    fake_model.faults.append(Fault(status=500))
    assert (await transcribe(client, 900)).status_code == 502  # failed: not metered

    query = (
        "SELECT model, purpose, thread_id, audio_bytes, input_tokens, output_tokens FROM usage"
        " WHERE user_id = %s ORDER BY audio_bytes DESC"
    )
    recorded = await rows(database_url, query, (user_id,))  # written before the answer
    assert recorded == [
        ("gpt-4o-mini-transcribe", "transcription", None, 1500, 10, 3),
        ("gpt-4o-mini-transcribe", "transcription", None, 700, 10, 3),
    ]
    daily = "SELECT count(*) FROM daily_usage WHERE user_id = %s"
    assert await rows(database_url, daily, (user_id,)) == [(0,)]


async def test_usage_report_shows_dictation(
    migrated_schema: tuple[str, PostgresStore], tmp_path: Path
) -> None:
    url, _store = migrated_schema
    await rows(
        url,
        "INSERT INTO usage (turn_id, call, user_id, thread_id, model, purpose, input_tokens,"
        " output_tokens, audio_bytes) VALUES"
        " ('t1', 1, 'alice', 'thr', 'm-chat', 'answer', 100, 20, NULL),"
        " ('t1', 2, 'alice', 'thr', 'm-chat', 'title', 10, 2, NULL),"
        " ('d1', 1, 'alice', NULL, 'm-ear', 'transcription', 30, 5, 48000),"
        " ('d2', 1, 'bob', NULL, 'm-ear', 'transcription', 0, 0, 2000)",
    )
    by_user = await usage_report(url, None, "user")
    assert [(r.key, r.turns, r.calls, r.transcriptions, r.audio_bytes) for r in by_user] == [
        ("alice", 1, 3, 1, 48000),
        ("bob", 0, 1, 1, 2000),
    ]
    table = await asyncio.to_thread(run_cli, tmp_path, url, "usage", "report", "--by", "model")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[-3:] == ["transcriptions", "audio", "bytes"]
    assert lines[2].split() == ["m-chat", "1", "2", "110", "22", "132", "0", "0"]
    assert lines[3].split() == ["m-ear", "0", "2", "30", "5", "35", "2", "50,000"]
    assert lines[-1].split() == ["total", "1", "4", "140", "27", "167", "2", "50,000"]
    done = await asyncio.to_thread(run_cli, tmp_path, url, "usage", "report", "--json")
    report = json.loads(done.stdout)
    assert report["rows"][0] == {
        "key": "alice",
        "turns": 1,
        "calls": 3,
        "input_tokens": 140,
        "output_tokens": 27,
        "transcriptions": 1,
        "audio_bytes": 48000,
        "total_tokens": 167,
    }
