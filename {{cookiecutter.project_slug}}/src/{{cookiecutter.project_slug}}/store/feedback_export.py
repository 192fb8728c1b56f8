"""Every `items.feedback` row, across users, as JSON lines ordered by `updated_at` (`--since`
for incremental exports): what `feedback export` prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TextIO

from .db import connect

BATCH_SIZE = 1000

EXPORT_FEEDBACK = """
SELECT thread_id, item_id, user_id, kind, created_at, updated_at
FROM feedback
WHERE updated_at >= COALESCE(%(since)s::timestamptz, '-infinity')
ORDER BY updated_at, thread_id, item_id, user_id
"""


def _utc(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z` and six fraction digits (sorts as text too)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def feedback_line(row: tuple[Any, ...]) -> str:
    thread_id, item_id, user_id, kind, created_at, updated_at = row
    record = {
        "thread_id": thread_id,
        "item_id": item_id,
        "user_id": user_id,
        "kind": kind,
        "created_at": _utc(created_at),
        "updated_at": _utc(updated_at),
    }
    return json.dumps(record)


async def export_feedback(
    conninfo: str, out: TextIO, since: datetime | None, *, batch_size: int = BATCH_SIZE
) -> int:
    """Write the rows changed at or after `since` to `out`, from one read-only snapshot,
    through a server-side cursor; how many."""
    count = 0
    async with await connect(conninfo) as conn, conn.transaction():
        await conn.execute("SET TRANSACTION READ ONLY")
        async with conn.cursor(name="feedback_export") as cursor:
            cursor.itersize = batch_size
            await cursor.execute(EXPORT_FEEDBACK, {"since": since})
            async for row in cursor:
                out.write(feedback_line(row) + "\n")
                count += 1
    return count
