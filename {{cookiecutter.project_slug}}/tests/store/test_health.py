"""A database that cannot be reached is told in few lines: one when `serve` starts without it
(where, why, that the app keeps trying, that /health answers 503), at most one per
REPORT_SECONDS while it stays down, and one when it is back; never the pool's own line per
failed attempt. /health names what is wrong (503 JSON, never 500), and logs it once."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from {{ cookiecutter.project_slug }}.store import db, health, health_check
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support.app import TEST_AUTH_SECRET, AppServer, app_settings, wait_until
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import ServerProcess

PACKAGE = "{{ cookiecutter.project_slug }}"
PASSWORD = "pw-S3cret-424242"


class Forwarder:
    """A TCP port that refuses connections until `open()`, then forwards them to the test
    database (its unix socket or its TCP address): a database that comes up late."""

    def __init__(self, database_url: str) -> None:
        self.target = conninfo_to_dict(database_url)
        self.placeholder = socket.socket()
        self.placeholder.bind(("127.0.0.1", 0))  # bound, not listening: connections refused
        self.port = int(self.placeholder.getsockname()[1])
        self.server: asyncio.Server | None = None

    def url(self) -> str:
        """The test database's URL through this port, with a password to mask."""
        user, dbname = self.target.get("user", "postgres"), self.target.get("dbname", "postgres")
        password = self.target.get("password") or PASSWORD
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = str(self.target.get("host", "")), str(self.target.get("port", "5432"))
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host or "127.0.0.1", int(port))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await self._connect()

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def open(self) -> None:
        """The database is back: listen on the port and forward."""
        self.placeholder.listen()
        self.server = await asyncio.start_server(self._handle, sock=self.placeholder)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.placeholder.close()


@contextlib.asynccontextmanager
async def late_database(database_url: str) -> AsyncIterator[Forwarder]:
    forwarder = Forwarder(database_url)
    try:
        yield forwarder
    finally:
        await forwarder.close()


def lines_with(app: ServerProcess, text: str) -> list[str]:
    return [line for line in app.stderr_lines if text in line]


async def test_serve_without_its_database_says_so_once_then_when_it_is_back(
    database_url: str,
) -> None:
    async with late_database(database_url) as database:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
        env.update(DATABASE_URL=database.url(), AUTH_SECRET=TEST_AUTH_SECRET, LOG_LEVEL="INFO")
        app = ServerProcess([sys.executable, "-m", PACKAGE, "serve", "--port", "0"], env=env)
        try:
            await app.started(60)
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.get(f"{app.url}/health")
                assert answer.status_code == 503
                assert answer.json()["database"] == "unreachable", answer.text
                await asyncio.sleep(4)  # several failed attempts (the pool's and the probes')
                down = lines_with(app, "database unreachable")
                assert len(down) == 1, app.describe()
                masked = f"postgresql://{database.target.get('user', 'postgres')}:***@127.0.0.1:"
                assert f"database unreachable: {masked}{database.port}/" in down[0]
                assert "Connection refused" in down[0], down
                assert "requests get 503 until it answers" in down[0]
                assert not lines_with(app, "psycopg.pool"), app.describe()
                assert not lines_with(app, "still unreachable"), "at most one line a minute"

                await database.open()
                assert await wait_until(lambda: lines_with(app, "database reachable again"), 40)
                assert (await http.get(f"{app.url}/health")).status_code == 200
        finally:
            app.stop()
    assert PASSWORD not in app.stdout + app.stderr
    (back,) = lines_with(app, "database reachable again after ")
    assert f"127.0.0.1:{database.port}" in back


async def test_a_long_outage_is_one_line_per_report_interval(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interval is REPORT_SECONDS (a minute), here a fraction of a second; the pool
    gives up on a connection after RECONNECT_TIMEOUT_SECONDS (5 minutes), here one, and the
    health probes notice the database coming back all the same."""
    monkeypatch.setattr(db, "RECONNECT_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(health, "REPORT_SECONDS", 0.5)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(health.__name__)
    logger.addHandler(handler)
    async with late_database(database_url) as database:
        store = PostgresStore(database.url(), min_size=1, max_size=2, timeout=0.5)
        try:
            await store.open()
            await asyncio.sleep(4.5)  # the pool's attempts, then the probes' (1, 3, 7 s, ...)
            lines = [(r.created, r.getMessage()) for r in records]
            assert lines[0][1].startswith("database unreachable: "), lines
            still = [at for at, message in lines if "still unreachable after" in message]
            assert still and len(lines) == 1 + len(still), lines
            times = [at for at, _ in lines]
            assert all(b - a >= 0.5 for a, b in itertools.pairwise(times)), lines
            assert store.health.down

            await database.open()
            await wait_until(lambda: not store.health.down, 40)
            assert records[-1].getMessage().startswith("database reachable again after ")
        finally:
            logger.removeHandler(handler)
            await store.close()
    assert all(PASSWORD not in r.getMessage() for r in records)


@contextlib.contextmanager
def health_lines() -> Iterator[list[str]]:
    """The lines store/health.py and store/health_check.py log meanwhile (WARNING and up)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    lines: list[str] = []
    loggers = [logging.getLogger(module.__name__) for module in (health, health_check)]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield lines
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        lines += [record.getMessage() for record in records]


async def health_answers(app: AppServer, times: int = 3) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=10) as http:
        return [await http.get(f"{app.url}/health") for _ in range(times)]


async def test_health_names_missing_migrations_once_until_db_upgrade(
    fresh_schema_url: str, fake_openai: FakeOpenAI
) -> None:
    app = AppServer(app_settings(fresh_schema_url, fake_openai.base_url)).start()
    try:
        with health_lines() as lines:
            answers = await health_answers(app)
            await db.apply_migrations(fresh_schema_url)
            (after,) = await health_answers(app, 1)
    finally:
        app.stop()
    latest = db.load_migrations()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "status": "unavailable",
            "database": "migrations_missing",
            "detail": f"{len(latest)} migration(s) not applied, from {latest[0].name}: "
            "run `db upgrade`",
        }
    assert after.status_code == 200 and after.json() == {"status": "ok", "database": "ok"}
    assert [line.split(":")[0] for line in lines] == [
        "/health answers 503",  # once, not per request
        "/health answers 200 again",
    ], lines


@pytest.mark.parametrize(
    "foreign",
    [
        # another framework's table of the same name (Rails, golang-migrate)
        ["CREATE TABLE schema_migrations (version varchar PRIMARY KEY)"],
        # one of our versions applied under another name
        ["UPDATE schema_migrations SET name = '0001_something_else.sql' WHERE version = 1"],
    ],
)
async def test_health_says_wrong_database_for_another_apps_schema(
    fresh_schema_url: str, fake_openai: FakeOpenAI, foreign: list[str]
) -> None:
    if foreign[0].startswith("UPDATE"):
        await db.apply_migrations(fresh_schema_url)
    async with await psycopg.AsyncConnection.connect(fresh_schema_url, autocommit=True) as conn:
        for statement in foreign:
            await conn.execute(statement.encode())
    app = AppServer(app_settings(fresh_schema_url, fake_openai.base_url)).start()
    try:
        with health_lines() as lines:
            answers = await health_answers(app)
    finally:
        app.stop()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["database"] == "wrong_database", answer.text
        assert "schema_migrations table is not this app's" in answer.json()["detail"]
    assert len(lines) == 1 and lines[0].startswith("/health answers 503: its schema_migrations")
