"""PostgreSQL plumbing: the pool, the numbered migrations in `migrations/` (applied in order
under an advisory lock) and URL redaction for messages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
MIGRATION_LOCK_ID = 0x43_68_61_74_4B_69_74  # "ChatKit": one key for every schema change
CONNECT_TIMEOUT_SECONDS = 10
RECONNECT_TIMEOUT_SECONDS = 300.0
"""How long the pool retries one connection (with backoff); then DatabaseHealth's probes do."""

# `scheme://user:password@host`: up to the last `@` counts as password.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)\S+?@(?=[^@\s]*(?:\s|$))")
_PARAM_PASSWORD = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]+)")

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]


def create_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 5.0,
) -> Pool:
    """A closed pool of autocommit connections without prepared statements (PgBouncer-safe);
    no connection within `timeout` seconds raises PoolTimeout (a 503)."""
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=timeout,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        kwargs={"autocommit": True, "prepare_threshold": None},
        name="chatkit-store",
    )


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    latest: int
    pending: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.pending


def load_migrations() -> list[Migration]:
    folder = resources.files(__name__.rpartition(".")[0]) / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = MIGRATION_FILE.match(entry.name)
        if match:
            text = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match.group(1)), entry.name, text))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return found


async def connect(conninfo: str) -> AsyncConnection[TupleRow]:
    params: dict[str, Any] = conninfo_to_dict(conninfo)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    return await AsyncConnection.connect(
        make_conninfo(**params), autocommit=True, prepare_threshold=None
    )


async def _lock(conn: AsyncConnection[TupleRow]) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))


async def _applied_versions(conn: AsyncConnection[TupleRow]) -> set[int]:
    cursor = await conn.execute("SELECT version FROM schema_migrations")
    return {row[0] for row in await cursor.fetchall()}


async def apply_migrations(conninfo: str) -> list[str]:
    """Apply the pending migrations in order (safe from several processes at once); the
    names this call applied."""
    applied_now: list[str] = []
    async with await connect(conninfo) as conn:
        async with conn.transaction():
            await _lock(conn)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for migration in load_migrations():
            async with conn.transaction():
                await _lock(conn)
                if migration.version in await _applied_versions(conn):
                    continue
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied_now.append(migration.name)
    return applied_now


async def schema_status(conninfo: str) -> SchemaStatus:
    migrations = load_migrations()
    async with await connect(conninfo) as conn:
        cursor = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cursor.fetchone()
        applied = await _applied_versions(conn) if row and row[0] else set()
    return SchemaStatus(
        current=max(applied, default=0),
        latest=max((m.version for m in migrations), default=0),
        pending=[m.name for m in migrations if m.version not in applied],
    )


def redact_url(url: str) -> str:
    redacted = _URL_PASSWORD.sub(r"\1***@", url)
    return _PARAM_PASSWORD.sub(r"\1***", redacted)


def redact_secrets(text: str, url: str) -> str:
    text = redact_url(text)
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")}:
        if secret:
            text = text.replace(secret, "***")
    return text
