"""Faults: the database going away, model faults mid-stream, clients hanging up, and two
instances starting at once. The service answers clearly, loses nothing, leaks nothing and
recovers on its own.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text, user_input
from {{ cookiecutter.project_slug }}.dev.embedded import start_embedded, stop_embedded
from {{ cookiecutter.project_slug }}.store import health as database_health
from {{ cookiecutter.project_slug }}.store.db import apply_migrations, load_migrations, redact_url
from tests.support.app import TEST_AUTH_SECRET, AppServer, app_settings, signed_token, wait_until
from tests.support.chatkit import error_events, items_of, thread_id_of
from tests.support.commands import spawn
from tests.support.fake_openai import GATE_SECONDS, FakeModel, FakeOpenAI, Fault
from tests.support.processes import ServerProcess

PACKAGE = "{{ cookiecutter.project_slug }}"
JSON = dict[str, Any]
REQUEST_SECONDS = 10.0
"""No request may take longer than this while the database is down (no hangs)."""


# --- (a) the database goes away mid-conversation ------------------------------------------------


class Database:
    """A PostgreSQL of this test's own, that the test stops and starts again."""

    def __init__(self, folder: Path) -> None:
        self.data_dir = folder / "pgdata"
        self.url = ""

    def start(self) -> str:
        self.url = start_embedded(self.data_dir, cleanup_mode="stop")
        return self.url

    def stop(self) -> None:
        stop_embedded(self.data_dir)


@pytest_asyncio.fixture(loop_scope="session")
async def own_database() -> AsyncIterator[Database]:
    folder = Path(tempfile.mkdtemp(prefix="chatkit-faults-pg-"))
    database = Database(folder)
    try:
        await asyncio.to_thread(database.start)
        await apply_migrations(database.url)
        yield database
    finally:
        await asyncio.to_thread(database.stop)
        shutil.rmtree(folder, ignore_errors=True)


async def health(http: httpx.AsyncClient, server: AppServer) -> int:
    return (await http.get(server.url + "/health", timeout=REQUEST_SECONDS)).status_code


async def timed_post(client: ChatKitClient, type_: str, params: JSON) -> httpx.Response:
    """POST a request and read all of it, failing if that takes longer than REQUEST_SECONDS."""
    body = {"type": type_, "params": params}
    async with asyncio.timeout(REQUEST_SECONDS):
        return await client.http.post(client.url, json=body, headers=client.headers)


def check_outage_answer(response: httpx.Response) -> None:
    """While the database is down: a JSON error, or a stream that ends with an error event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [
            json.loads(line[6:]) for line in response.text.splitlines() if line[:6] == "data: "
        ]
        assert events and events[-1]["type"] == "error", response.text[-300:]
        return
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    assert "Traceback" not in response.text and "psycopg" not in response.text


@pytest.fixture
def own_app(own_database: Database, fake_openai: FakeOpenAI) -> Iterator[AppServer]:
    """The app on the test's own database (app_factory always uses the session database)."""
    settings = app_settings(
        own_database.url, fake_openai.base_url, db_pool_max_size=4, db_pool_timeout=1.0
    )
    server = AppServer(settings).start()
    yield server
    server.stop()


async def test_database_outage_is_clear_loses_nothing_and_recovers(
    own_database: Database, own_app: AppServer, fake_model: FakeModel
) -> None:
    server = own_app
    client = ChatKitClient(server.url, server.token("outage-user"))
    http = client.http
    first = await client.send("hello before the outage")
    thread_id = thread_id_of(first)
    assert not error_events(first)

    # A turn is streaming when the database goes away: the model holds its answer after the
    # first token until the database is down, however long stopping it takes.
    fake_model.tokens, fake_model.delay = 40, 0.0
    gate = fake_model.gate = threading.Event()
    events: list[JSON] = []
    params = {"thread_id": thread_id, "input": user_input("interrupted turn")}
    async with asyncio.timeout(REQUEST_SECONDS + GATE_SECONDS):
        async for event in client.stream("threads.add_user_message", params):
            events.append(event)
            if event["type"] == "thread.item.updated" and not gate.is_set():
                await asyncio.to_thread(own_database.stop)  # the answer has started
                gate.set()
    assert gate.is_set(), "the stream ended before the answer started"
    assert events[-1]["type"] == "error", "the stream ends with an error event, not a cut"

    # While it is down: /health says 503, every request fails clearly and quickly.
    fake_model.tokens, fake_model.delay = 5, 0.0
    assert await health(http, server) == 503
    for type_, request_params in [
        ("threads.list", {}),
        ("threads.create", {"input": user_input("during the outage")}),
        ("threads.add_user_message", {"thread_id": thread_id, "input": user_input("still down")}),
    ]:
        check_outage_answer(await timed_post(client, type_, request_params))

    # It comes back: the same app recovers without a restart.
    await asyncio.to_thread(own_database.start)
    assert await wait_until(lambda: _healthy(http, server), 10), "healthy again within 10 s"
    again = await client.send("after the outage", thread_id)
    assert not error_events(again)

    await client.aclose()
    await assert_nothing_half_written(own_database.url)


async def _healthy(http: httpx.AsyncClient, server: AppServer) -> bool:
    return await health(http, server) == 200


async def assert_nothing_half_written(database_url: str) -> None:
    """Every thread's user messages are whole, and every assistant message is complete:
    each user message is followed by at most one assistant message, with text."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute(
            "SELECT thread_id, payload FROM thread_items ORDER BY thread_id, created_at, seq"
        )
        rows = await cursor.fetchall()
    by_thread: dict[str, list[JSON]] = {}
    for thread_id, payload in rows:
        by_thread.setdefault(thread_id, []).append(payload)
    assert by_thread, "the conversation was stored"
    for thread_id, items in by_thread.items():
        kinds = [item["type"] for item in items if item["type"] != "sdk_hidden_context"]
        assert kinds[0] == "user_message", (thread_id, kinds)
        for before, after in itertools.pairwise(kinds):
            assert (before, after) != ("assistant_message", "assistant_message"), kinds
        for item in items:
            if item["type"] == "assistant_message":
                assert assistant_text(item) in COMPLETE_ANSWERS, (thread_id, item)


COMPLETE_ANSWERS = {"".join(f"tok{i} " for i in range(n)) for n in (5, 40)}


# --- (b) the model connection is reset mid-answer ------------------------------------------------


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_reset_mid_answer_stores_the_partial_answer(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    api: str,
) -> None:
    """The client saw the partial text as it streamed, then an error event; the thread keeps
    the user's message and that partial answer (stored before the error), and the next turn's
    history holds it.
    """
    client = client_for(server=app_factory(openai_api=api))
    first = await client.send("hello")
    thread_id = thread_id_of(first)
    fake_model.tokens, fake_model.delay = 10, 0.05  # tokens reach the client before the reset
    fake_model.faults.append(Fault(reset_after_tokens=3))

    events = await client.send("tell me everything", thread_id)
    deltas = "".join(
        e["update"].get("delta", "")
        for e in events
        if e["type"] == "thread.item.updated" and isinstance(e.get("update"), dict)
    )
    # A TCP reset may drop bytes still in flight, so the client sees a prefix of the partial.
    assert deltas and "tok0 tok1 tok2 ".startswith(deltas), "only what the model really sent"
    assert events[-1]["type"] == "error" and events[-1]["allow_retry"] is True
    kinds = [(i["type"], assistant_text(i)) for i in await items_of(client, thread_id)]
    assert kinds[2:] == [("user_message", "tell me everything"), ("assistant_message", deltas)], (
        "the user's message stays, and the partial answer as the client saw it"
    )

    again = await client.send("try again", thread_id)
    assert not error_events(again)
    history = json.dumps(fake_model.requests[-1])
    assert "tell me everything" in history and deltas in history
    assert [i["type"] for i in await items_of(client, thread_id)][-2:] == [
        "user_message",
        "assistant_message",
    ]


# --- (c) clients hang up: nothing leaks ----------------------------------------------------------


async def hang_up_mid_stream(client: ChatKitClient, text: str) -> None:
    """Start a turn and close the connection after a few deltas."""
    body = {"type": "threads.create", "params": {"input": user_input(text)}}
    deltas = 0
    async with client.http.stream("POST", client.url, json=body, headers=client.headers) as rsp:
        async for line in rsp.aiter_lines():
            deltas += '"thread.item.updated"' in line
            if deltas >= 3:
                return


async def test_disconnected_streams_leak_no_connections_or_tasks(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    fake_model.tokens, fake_model.delay = 200, 0.02
    clients = [client_for() for _ in range(8)]
    await asyncio.gather(*(hang_up_mid_stream(c, f"story {n}") for n, c in enumerate(clients)))

    assert await wait_until(lambda: fake_model.abandoned == len(clients), 10), (
        "every upstream model stream was closed",
        fake_model.abandoned,
    )
    assert fake_model.completed == 0
    chat_server = app_server.app.state.server
    pool = app_server.app.state.store.pool

    def idle() -> bool:
        stats = pool.get_stats()
        return not chat_server._saving and stats["pool_available"] == stats["pool_size"]

    assert await wait_until(idle, 10), ("pool back to idle", pool.get_stats())
    assert pool.get_stats().get("requests_waiting", 0) == 0
    for client in clients:
        (thread,) = (await client.request("threads.list", {}))["data"]
        kinds = [i["type"] for i in await items_of(client, thread["id"])]
        assert kinds == ["user_message", "assistant_message"], "the partial answer was kept"


# --- (d) two instances start at once on an empty database ---------------------------------------


def instance_env(database_url: str, fake_openai: FakeOpenAI) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    env.update(
        DATABASE_URL=database_url,
        AUTH_SECRET=TEST_AUTH_SECRET,
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=fake_openai.base_url,
        OPENAI_MODEL="test-model",
        OPENAI_MAX_RETRIES="0",
        LOG_LEVEL="INFO",  # uvicorn's startup line gives the port the OS picked
    )
    return env


async def test_two_instances_start_at_once_on_an_empty_database(
    fresh_schema_url: str, fake_openai: FakeOpenAI, fake_model: FakeModel, tmp_path: Path
) -> None:
    """The deployment recipe `db upgrade && serve`, twice at once: one migrates, both serve.

    Each listens on `--port 0` (a port chosen beforehand could be taken by then, and `serve`
    exits 3), and every assertion shows both instances' output."""
    env = instance_env(fresh_schema_url, fake_openai)
    upgrade = [sys.executable, "-m", PACKAGE, "db", "upgrade"]
    upgrades = [spawn(upgrade, env=env, cwd=tmp_path) for _ in range(2)]  # at once
    upgraded = [await asyncio.to_thread(proc.communicate, 60) for proc in upgrades]
    instances: list[ServerProcess] = []

    def outputs() -> str:
        ran = [f"\n--- db upgrade (exit {proc.returncode}):\n{out}{err}"
               for proc, (out, err) in zip(upgrades, upgraded, strict=True)]  # fmt: skip
        return "".join(ran + [instance.describe() for instance in instances])

    assert [proc.returncode for proc in upgrades] == [0, 0], outputs()
    serve = [sys.executable, "-m", PACKAGE, "serve", "--port", "0"]
    instances.extend(ServerProcess(serve, env=env, cwd=tmp_path) for _ in range(2))

    try:
        ports = [await instance.started(60) for instance in instances]
        async with httpx.AsyncClient() as http:

            async def both_healthy() -> bool:
                try:
                    answers = [await http.get(f"http://127.0.0.1:{p}/health") for p in ports]
                except httpx.TransportError:
                    return False
                return all(a.status_code == 200 for a in answers)

            assert await wait_until(both_healthy, 30), outputs()
        token = signed_token({"sub": "two-instances", "exp": int(time.time()) + 600})
        for port in ports:
            async with ChatKitClient(f"http://127.0.0.1:{port}", token) as client:
                assert not error_events(await client.send(f"hello {port}")), outputs()
    finally:
        for instance in instances:
            instance.stop()

    applied = [line.strip() for out, _ in upgraded for line in out.splitlines()
               if line.startswith("applied")]  # fmt: skip
    assert sorted(applied) == sorted(f"applied {m.name}" for m in load_migrations()), outputs()
    async with await psycopg.AsyncConnection.connect(fresh_schema_url) as conn:
        cursor = await conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY 1")
        rows = dict(await cursor.fetchall())
    assert rows == {m.version: 1 for m in load_migrations()}, outputs()


# --- (e) a turn cut by a database restart; an outage in the logs --------------------------------


def own_app_settings(database: Database, fake_openai: FakeOpenAI, **overrides: Any) -> Any:
    return app_settings(
        database.url, fake_openai.base_url, db_pool_max_size=4, db_pool_timeout=1.0, **overrides
    )


async def test_a_turn_cut_by_a_database_restart_records_its_usage_and_frees_its_slot(
    own_database: Database, fake_openai: FakeOpenAI, fake_model: FakeModel
) -> None:
    """The title call completed before PostgreSQL went away mid-answer: once it is back, that
    call is in `usage` and the user's day, and the turn's stream slot is free (one allowed)."""
    settings = own_app_settings(own_database, fake_openai, max_concurrent_streams_per_user=1)
    server = AppServer(settings).start()
    client = ChatKitClient(server.url, server.token("cut-user"))
    try:
        fake_model.tokens, fake_model.delay = 60, 0.0
        gate = fake_model.gate = threading.Event()  # the answer waits for the database to stop
        events: list[JSON] = []
        async with asyncio.timeout(30 + GATE_SECONDS):
            async for event in client.stream("threads.create", {"input": user_input("hello")}):
                events.append(event)
                if event["type"] == "thread.item.updated" and not gate.is_set():
                    assert await wait_until(
                        lambda: [b for b in fake_model.requests if not b.get("stream")]
                    )
                    await asyncio.sleep(0.2)  # the title's answer has reached the app
                    await asyncio.to_thread(own_database.stop)
                    gate.set()
        assert gate.is_set(), "the stream ended before the answer started"
        assert events[-1]["type"] == "error"
        await asyncio.to_thread(own_database.start)

        async def recorded() -> bool:
            try:
                async with await psycopg.AsyncConnection.connect(own_database.url) as conn:
                    usage = await (
                        await conn.execute("SELECT purpose FROM usage WHERE user_id = 'cut-user'")
                    ).fetchall()
                    leases = await (
                        await conn.execute(
                            "SELECT leases FROM user_limits WHERE user_id = 'cut-user'"
                        )
                    ).fetchall()
            except psycopg.OperationalError:
                return False
            return ("title",) in usage and leases == [({},)]

        assert await wait_until(recorded, 30), "usage recorded and the lease released"
        fake_model.tokens, fake_model.delay = 5, 0.0
        again = await client.send("after the restart")
        assert not error_events(again), "the user's one stream slot is free"
    finally:
        await client.aclose()
        server.stop()


class StderrCopy:
    """What the app's own log handler writes (it filters and formats), kept for the test."""

    def __init__(self) -> None:
        self.handlers = [
            h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
        ]
        self.buffer = io.StringIO()
        self.streams = [h.setStream(self.buffer) for h in self.handlers]

    def lines(self) -> list[str]:
        return [line for line in self.buffer.getvalue().splitlines() if line.strip()]

    def restore(self) -> None:
        for handler, stream in zip(self.handlers, self.streams, strict=True):
            handler.setStream(stream)


async def test_an_outage_is_three_kinds_of_line_and_no_storm_of_logins(
    own_database: Database,
    fake_openai: FakeOpenAI,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While PostgreSQL is down, 200 requests get their 503 at once; the log has one line when
    the outage starts, at most one per REPORT_SECONDS (here 1 s) while it lasts and one when
    it ends, and nothing else; and the app logs in a handful of times, not per request."""
    monkeypatch.setattr(database_health, "REPORT_SECONDS", 1.0)
    logins = 0
    connect = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]

    async def counted(cls: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal logins
        logins += 1
        return await connect(cls, *args, **kwargs)

    server = AppServer(own_app_settings(own_database, fake_openai)).start()
    client = ChatKitClient(server.url, server.token("outage-lines"))
    copy = StderrCopy()
    try:
        thread_id = thread_id_of(await client.send("before"))
        monkeypatch.setattr(psycopg.AsyncConnection, "connect", classmethod(counted))
        await asyncio.to_thread(own_database.stop)
        started = time.monotonic()
        statuses: list[int] = []
        while len(statuses) < 200:
            response = await timed_post(client, "threads.list", {})
            statuses.append(response.status_code)
            await asyncio.sleep(0.015)
        turn = {"thread_id": thread_id, "input": user_input("during")}
        check_outage_answer(await timed_post(client, "threads.add_user_message", turn))
        await asyncio.sleep(max(0.0, 3.5 - (time.monotonic() - started)))
        await asyncio.to_thread(own_database.start)
        assert await wait_until(lambda: _healthy(client.http, server), 20)
        outage_logins = logins
    finally:
        copy.restore()
        await client.aclose()
        server.stop()

    assert set(statuses) == {503}
    lines = copy.lines()
    began = [line for line in lines if "database unreachable" in line]
    lasting = [line for line in lines if "database still unreachable" in line]
    ended = [line for line in lines if "database reachable again" in line]
    assert len(began) == 1 and len(ended) == 1, lines
    assert 1 <= len(lasting) <= time.monotonic() - started, lines
    assert len(began) + len(lasting) + len(ended) == len(lines), "nothing else:\n" + "\n".join(
        lines
    )
    assert redact_url(own_database.url) in began[0], "where, its password masked"
    print("\n".join(lines), f"\nlogins during the outage: {outage_logins}")
    assert outage_logins <= 30, f"{outage_logins} logins for 200 requests"
