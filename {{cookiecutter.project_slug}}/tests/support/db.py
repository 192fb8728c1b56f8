"""A real PostgreSQL for the tests (pytest plugin, loaded by conftest.py).

`database_url`: TEST_DATABASE_URL when set (a schema of its own for each pytest-xdist worker),
else an embedded PostgreSQL in a temporary folder for the session (each worker its own server,
deleted afterwards); migrations are applied once.
`store`: an open PostgresStore on it. `context`: a fresh user per test, so tests are
isolated without truncating tables. `fresh_schema_url`: an empty schema of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import pytest_asyncio

from {{ cookiecutter.project_slug }}.context import RequestContext, User
from {{ cookiecutter.project_slug }}.dev.embedded import start_embedded, stop_embedded
from {{ cookiecutter.project_slug }}.store.db import apply_migrations
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore


def make_context(user_id: str | None = None) -> RequestContext:
    """A request context for `user_id` (a new unique user when None)."""
    return RequestContext(request=None, user=User(id=user_id or f"user-{uuid.uuid4().hex}"))


def with_options(url: str, **params: str) -> str:
    """`url` with extra libpq parameters in its query string."""
    extra = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


@asynccontextmanager
async def own_schema(url: str) -> AsyncIterator[str]:
    """`url` with an empty schema of its own first on the search path (dropped afterwards)."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
    try:
        yield with_options(url, options=f"-csearch_path={schema}")
    finally:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url() -> AsyncIterator[str]:
    """A migrated PostgreSQL for the whole session (for each pytest-xdist worker: its own)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url and os.environ.get("PYTEST_XDIST_WORKER"):
        # the workers share that server: each migrates and uses a schema of its own
        async with own_schema(url) as worker_url:
            await apply_migrations(worker_url)
            yield worker_url
        return
    if url:
        await apply_migrations(url)
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="chatkit-test-pg-"))
    data_dir = folder / "pgdata"
    try:
        url = await asyncio.to_thread(start_embedded, data_dir, cleanup_mode="delete")
        await apply_migrations(url)
        yield url
    finally:
        await asyncio.to_thread(stop_embedded, data_dir)
        shutil.rmtree(folder, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def store(database_url: str) -> AsyncIterator[PostgresStore]:
    """An open PostgresStore shared by the session."""
    postgres_store = PostgresStore(database_url, max_size=10)
    await postgres_store.open()
    yield postgres_store
    await postgres_store.close()


@pytest.fixture
def context() -> RequestContext:
    """A fresh user for this test."""
    return make_context()


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_schema_url(database_url: str) -> AsyncIterator[str]:
    """The test database with an empty schema of its own first on the search path."""
    async with own_schema(database_url) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def migrated_schema(fresh_schema_url: str) -> AsyncIterator[tuple[str, PostgresStore]]:
    """A migrated, empty schema of its own and a store on it (for admin commands that read
    every user's rows, such as exports and prunes)."""
    await apply_migrations(fresh_schema_url)
    own = PostgresStore(fresh_schema_url, min_size=1, max_size=2)
    await own.open()
    try:
        yield fresh_schema_url, own
    finally:
        await own.close()
