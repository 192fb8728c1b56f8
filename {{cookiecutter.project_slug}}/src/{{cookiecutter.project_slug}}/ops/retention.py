"""`db prune`: delete what is kept no longer: attachments never sent in a message and, with
RETENTION_DAYS, threads nobody wrote in for that long (items, attachments, feedback with them)."""

from __future__ import annotations

import json

from ..settings import Settings
from ..store.db import admin_command, connect
from .storage_commands import remove_objects

PRUNE_BATCH = """
DELETE FROM attachments
WHERE id IN (
    SELECT id FROM attachments
    WHERE thread_id IS NULL AND created_at < now() - make_interval(hours => %(hours)s)
    ORDER BY created_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
"""

# A thread expires when it and its newest item are older than the cutoff. Each statement takes
# at most `batch` threads and skips those locked (written to right now), so no lock is held
# long; the cascades take their items, attachments (with bytes) and feedback.
EXPIRE_BATCH = """
DELETE FROM threads
WHERE id IN (
    SELECT t.id FROM threads AS t
    WHERE t.created_at < now() - make_interval(days => %(days)s)
      AND NOT EXISTS (
          SELECT 1 FROM thread_items AS i
          WHERE i.thread_id = t.id AND i.created_at >= now() - make_interval(days => %(days)s)
      )
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
"""


async def _in_batches(conninfo: str, statement: str, params: dict[str, int], batch: int) -> int:
    """Run a batched DELETE (each its own transaction) until a batch comes back short."""
    removed = 0
    async with await connect(conninfo) as conn:
        while True:
            cursor = await conn.execute(statement, {**params, "batch": batch})
            removed += max(cursor.rowcount, 0)
            if cursor.rowcount < batch:
                return removed


async def prune_orphans(conninfo: str, hours: int, *, batch_size: int = 1000) -> int:
    """Delete every user's attachments (and bytes) never sent in a message and older than
    `hours`; returns how many. In batches, so no statement holds many rows for long."""
    return await _in_batches(conninfo, PRUNE_BATCH, {"hours": hours}, batch_size)


async def prune_expired_threads(conninfo: str, days: int, *, batch_size: int = 500) -> int:
    """Delete every user's threads with no item created in the last `days` days (nor the
    thread itself); returns how many. 500 threads per statement by default."""
    return await _in_batches(conninfo, EXPIRE_BATCH, {"days": days}, batch_size)


async def prune_command(settings: Settings, as_json: bool = False) -> int:
    """`db prune`: delete orphan attachments older than ATTACHMENT_ORPHAN_HOURS and, when
    RETENTION_DAYS is set, expired threads; exit code."""
    hours, days = settings.attachment_orphan_hours, settings.retention_days

    async def prune(conninfo: str) -> int:
        orphans = await prune_orphans(conninfo, hours)
        threads = await prune_expired_threads(conninfo, days) if days else 0
        # Their objects, any a delete left queued, and objects with no row (the sweep).
        deleted, swept = await remove_objects(settings, conninfo, sweep=True)
        if as_json:
            counts = {"attachments": orphans, "threads": threads}
            if settings.attachment_storage != "postgres":
                counts |= {"objects": deleted, "unreferenced_objects": swept}
            print(json.dumps({"removed": counts, "orphan_hours": hours, "retention_days": days}))
            return 0
        print(f"removed {orphans} unattached attachments older than {hours} hours")
        if days:
            print(f"removed {threads} threads with nothing new for {days} days")
        if settings.attachment_storage != "postgres":
            print(f"removed {deleted} objects of deleted rows and {swept} objects with no row")
        return 0

    return await admin_command(settings, "prune", "no attachment threads", prune)
