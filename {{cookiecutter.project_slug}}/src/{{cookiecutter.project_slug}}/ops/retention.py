"""`db prune`: delete what is kept no longer (attachments never sent in a message)."""

from __future__ import annotations

from ..settings import Settings
from ..store.db import admin_command, connect

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


async def prune_orphans(conninfo: str, hours: int, *, batch_size: int = 1000) -> int:
    """Delete every user's attachments (and bytes) never sent in a message and older than
    `hours`; returns how many. In batches, so no statement holds many rows for long."""
    removed = 0
    async with await connect(conninfo) as conn:
        while True:
            cursor = await conn.execute(PRUNE_BATCH, {"hours": hours, "batch": batch_size})
            removed += max(cursor.rowcount, 0)
            if cursor.rowcount < batch_size:
                return removed


async def prune_command(settings: Settings) -> int:
    """`db prune`: delete orphan attachments older than ATTACHMENT_ORPHAN_HOURS; exit code."""
    hours = settings.attachment_orphan_hours

    async def prune(conninfo: str) -> int:
        removed = await prune_orphans(conninfo, hours)
        print(f"removed {removed} unattached attachments older than {hours} hours")
        return 0

    return await admin_command(settings, "prune", "no attachment threads", prune)
