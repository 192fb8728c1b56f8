"""What `/health` reports: whether the database answers, is this app's and is migrated."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import psycopg

from ..settings import EMBEDDED
from .db import load_migrations
from .health import Problem, one_line
from .postgres import PostgresStore

logger = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
UNREACHABLE = Problem("unreachable", "the database does not answer")
FOREIGN_SCHEMA = "its schema_migrations table is not this app's (another application's database?)"


async def check_health(store: PostgresStore) -> Problem | None:
    """What /health reports: None, or what is wrong, logged once (docs/design_decisions.md)."""
    state = store.health
    try:
        if not await store.ping():
            problem: Problem | None = UNREACHABLE
        elif state.verified:
            problem = None
        else:
            async with asyncio.timeout(CHECK_SECONDS):
                problem = await _inspect(store)
            state.verified = problem is None
    except Exception as exc:
        problem = Problem("check_failed", f"the health check failed: {one_line(exc, state.redact)}")
    if problem != state.reported:
        if problem is not None and problem is not UNREACHABLE:
            logger.warning("/health answers 503: %s", problem.detail)
        elif problem is None and state.reported is not UNREACHABLE:
            logger.warning("/health answers 200 again: %s", state.where)
        state.reported = problem
    return problem


async def _inspect(store: PostgresStore) -> Problem | None:
    """Whether the database is this app's, and migrated (docs/design_decisions.md)."""
    async with store.pool.connection() as conn:
        if store.database_url == EMBEDDED and store.data_dir is not None:
            cursor = await conn.execute("SELECT current_setting('data_directory')")
            row = await cursor.fetchone()
            served, ours = Path(row[0] if row else ""), store.data_dir.expanduser()
            if not await asyncio.to_thread(_same_folder, served, ours):
                return Problem(
                    "wrong_database",
                    f"the embedded PostgreSQL answering keeps its data in {served}, not {ours}",
                )
        cursor = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cursor.fetchone()
        applied: dict[int, str] = {}
        if row and row[0]:
            try:
                cursor = await conn.execute("SELECT version, name FROM schema_migrations")
                applied = dict(await cursor.fetchall())
            except psycopg.errors.UndefinedColumn:
                return Problem("wrong_database", FOREIGN_SCHEMA)
    ours_by_version = {m.version: m.name for m in load_migrations()}
    if any(ours_by_version.get(version, name) != name for version, name in applied.items()):
        return Problem("wrong_database", FOREIGN_SCHEMA)
    pending = [name for version, name in ours_by_version.items() if version not in applied]
    if pending:
        return Problem(
            "migrations_missing",
            f"{len(pending)} migration(s) not applied, from {pending[0]}: run `db upgrade`",
        )
    return None


def _same_folder(one: Path, other: Path) -> bool:
    return one.resolve() == other.resolve()
