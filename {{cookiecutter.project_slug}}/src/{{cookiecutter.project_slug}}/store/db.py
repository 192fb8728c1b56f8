"""PostgreSQL plumbing: the connection pool, schema migrations and the `db` commands.

Migrations are the numbered `.sql` files in `migrations/` (`0001_initial.sql`, ...),
applied in order, each in its own transaction, recorded in `schema_migrations`.
Every transaction that reads or changes the schema first takes a transaction-scoped
advisory lock, so several instances starting at once apply each migration exactly once
(and it works behind PgBouncer in transaction mode).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from ..dev.embedded import EmbeddedPostgresMissing, resolve_database_url
from ..settings import EMBEDDED, Settings

MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
MIGRATION_LOCK_ID = 0x43_68_61_74_4B_69_74  # "ChatKit": one key for every schema change
CONNECT_TIMEOUT_SECONDS = 10
RECONNECT_TIMEOUT_SECONDS = 300.0
"""How long the pool retries one connection (with backoff); then DatabaseHealth's probes do."""
PACKAGE = __name__.split(".")[0]

# `scheme://user:password@host`: everything up to the token's last `@` counts as password.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)\S+?@(?=[^@\s]*(?:\s|$))")
# `password=...` as a URL parameter or in a `key=value` connection string.
_PARAM_PASSWORD = re.compile(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]+)")

Pool = AsyncConnectionPool[AsyncConnection[TupleRow]]


def create_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 5.0,
    connection_class: type[AsyncConnection[TupleRow]] = AsyncConnection,
) -> Pool:
    """A closed pool of autocommit connections (open it with `await pool.open()`).

    Waiting longer than `timeout` seconds for a connection raises PoolTimeout (the app
    answers 503), so an unreachable database never makes requests hang.

    No server-side prepared statements (`prepare_threshold=None`), so it is safe behind
    PgBouncer in transaction mode. Connections are not pinged before each use (that would
    double the round trips): the store retries a statement once when its connection turns
    out to be dead, after `pool.check()` has replaced the other dead ones.
    """
    return AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        timeout=timeout,
        connection_class=connection_class,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        kwargs={"autocommit": True, "prepare_threshold": None},
        name="chatkit-store",
    )


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands: applied version, latest known version, what is pending."""

    current: int
    latest: int
    pending: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        """True when no migration is pending."""
        return not self.pending


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
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
    """One autocommit connection (with a connect timeout unless the URL sets one)."""
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
    """Apply the pending migrations in order; returns the names applied by this call.

    Safe to run any number of times, from several processes at once.
    """
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
    """The applied and the latest schema version, and the pending migrations."""
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
    """The URL with any password replaced by `***` (also `password=` parameters)."""
    redacted = _URL_PASSWORD.sub(r"\1***@", url)
    return _PARAM_PASSWORD.sub(r"\1***", redacted)


def redact_secrets(text: str, url: str) -> str:
    """`text` (an error message, say) with the password of `url` removed, in any form."""
    text = redact_url(text)
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password or "")}:
        if secret:
            text = text.replace(secret, "***")
    return text


def describe_database(settings: Settings) -> str:
    """A one-line, password-free description of where the data lives."""
    if settings.database_url == EMBEDDED:
        return f"embedded PostgreSQL in {settings.embedded_data_dir.name}/ (development only)"
    return redact_url(settings.database_url)


def _one_line(exc: BaseException, url: str) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return redact_secrets(message, url)


async def _resolve(settings: Settings) -> str | None:
    """The database URL (starting the embedded server if needed), or None after an error."""
    try:
        return await asyncio.to_thread(resolve_database_url, settings)
    except EmbeddedPostgresMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        reason = _one_line(exc, settings.database_url)
        print(f"error: cannot reach the database: {reason}", file=sys.stderr)
        return None


def _report_failure(exc: psycopg.Error, url: str) -> int:
    reason = _one_line(exc, url)
    if isinstance(exc, psycopg.OperationalError):
        print(f"error: cannot reach the database: {reason}", file=sys.stderr)
    else:
        print(f"error: migration failed: {reason}", file=sys.stderr)
    return 1


async def admin_command(
    settings: Settings, what: str, missing: str, work: Callable[[str], Awaitable[int]]
) -> int:
    """Run an admin command's `work(conninfo)`; every database failure is one line.

    `what` names the command in errors ("usage report failed: ..."), `missing` what an
    unmigrated database lacks ("no usage table"). Returns `work`'s exit code, or 1.
    """
    conninfo = await _resolve(settings)
    if conninfo is None:
        return 1
    try:
        return await work(conninfo)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        print(f"error: {missing}: run `python -m {PACKAGE} db upgrade` first", file=sys.stderr)
    except psycopg.OperationalError as exc:
        print(f"error: cannot reach the database: {_one_line(exc, conninfo)}", file=sys.stderr)
    except psycopg.Error as exc:
        print(f"error: {what} failed: {_one_line(exc, conninfo)}", file=sys.stderr)
    return 1


async def upgrade_command(settings: Settings) -> int:
    """`db upgrade`: create or migrate the tables. Returns the process exit code."""
    print(f"database: {describe_database(settings)}")
    conninfo = await _resolve(settings)
    if conninfo is None:
        return 1
    try:
        applied = await apply_migrations(conninfo)
        status = await schema_status(conninfo)
    except psycopg.Error as exc:
        return _report_failure(exc, conninfo)
    for name in applied:
        print(f"applied {name}")
    print(f"schema up to date (version {status.current})")
    return 0


async def status_command(settings: Settings) -> int:
    """`db status`: print the schema version and pending migrations (exit 0 either way)."""
    print(f"database: {describe_database(settings)}")
    conninfo = await _resolve(settings)
    if conninfo is None:
        return 1
    try:
        status = await schema_status(conninfo)
    except psycopg.Error as exc:
        return _report_failure(exc, conninfo)
    if status.up_to_date:
        print(f"schema up to date (version {status.current})")
    else:
        print(f"schema version {status.current} of {status.latest}")
        for name in status.pending:
            print(f"pending {name}")
        print(f"run `python -m {PACKAGE} db upgrade` to apply them")
    return 0
