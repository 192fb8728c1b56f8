"""What `db prune` deletes: attachments never sent in a message and, with
RETENTION_DAYS, threads nobody wrote in for that long (items, attachments, feedback with them)."""

from __future__ import annotations

from .db import connect

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
