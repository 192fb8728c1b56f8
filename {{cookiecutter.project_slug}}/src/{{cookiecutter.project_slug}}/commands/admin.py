"""What every operator command shares: the database URL resolved (the embedded server started
if need be) and each database failure reported as one line without secrets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable

import psycopg

from ..dev.embedded import EmbeddedPostgresMissing, resolve_database_url
from ..settings import EMBEDDED, Settings
from ..store.db import redact_secrets, redact_url

PACKAGE = __name__.split(".")[0]


def describe_database(settings: Settings) -> str:
    if settings.database_url == EMBEDDED:
        return f"embedded PostgreSQL in {settings.embedded_data_dir.name}/ (development only)"
    return redact_url(settings.database_url)


def one_line(exc: BaseException, url: str) -> str:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return redact_secrets(message, url)


async def resolve(settings: Settings) -> str | None:
    try:
        return await asyncio.to_thread(resolve_database_url, settings)
    except EmbeddedPostgresMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        reason = one_line(exc, settings.database_url)
        print(f"error: cannot reach the database: {reason}", file=sys.stderr)
        return None


def _report_failure(exc: psycopg.Error, url: str) -> int:
    reason = one_line(exc, url)
    if isinstance(exc, psycopg.OperationalError):
        print(f"error: cannot reach the database: {reason}", file=sys.stderr)
    else:
        print(f"error: migration failed: {reason}", file=sys.stderr)
    return 1


async def admin_command(
    settings: Settings, what: str, missing: str, work: Callable[[str], Awaitable[int]]
) -> int:
    """An admin command's `work(conninfo)`, every database failure one line naming `what`
    failed, or `missing` for an unmigrated database; the exit code."""
    conninfo = await resolve(settings)
    if conninfo is None:
        return 1
    try:
        return await work(conninfo)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        print(f"error: {missing}: run `python -m {PACKAGE} db upgrade` first", file=sys.stderr)
    except psycopg.OperationalError as exc:
        print(f"error: cannot reach the database: {one_line(exc, conninfo)}", file=sys.stderr)
    except psycopg.Error as exc:
        print(f"error: {what} failed: {one_line(exc, conninfo)}", file=sys.stderr)
    return 1


async def schema_command(settings: Settings, work: Callable[[str], Awaitable[None]]) -> int:
    print(f"database: {describe_database(settings)}")
    conninfo = await resolve(settings)
    if conninfo is None:
        return 1
    try:
        await work(conninfo)
    except psycopg.Error as exc:
        return _report_failure(exc, conninfo)
    return 0
