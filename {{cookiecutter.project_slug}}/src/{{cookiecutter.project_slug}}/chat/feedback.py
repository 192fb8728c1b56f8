"""`feedback export`: every stored `items.feedback` row as JSON lines, for analysis.

An admin command across all users, so it reads table `feedback` on a plain connection
rather than through the request-scoped store. Rows stream through a server-side cursor
in batches: a million rows never sit in memory at once. One JSON object per line:

    {"thread_id": "thr_1", "item_id": "msg_2", "user_id": "alice", "kind": "positive",
     "created_at": "2025-03-01T12:00:00.000000Z", "updated_at": "2025-03-01T12:05:00.000000Z"}

(on one line). `created_at` is when the user first gave feedback on the item, `updated_at`
when they last changed it (the kind is the latest one). Ordered by `updated_at`, then the
keys; `--since T` keeps the rows changed at or after T, so exports can be incremental.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from ..settings import Settings
from ..store.db import admin_command, connect

PACKAGE = __name__.split(".")[0]
BATCH_SIZE = 1000

EXPORT_FEEDBACK = """
SELECT thread_id, item_id, user_id, kind, created_at, updated_at
FROM feedback
WHERE updated_at >= COALESCE(%(since)s::timestamptz, '-infinity')
ORDER BY updated_at, thread_id, item_id, user_id
"""


def _utc(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z` and always six fraction digits (sorts as text too)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def feedback_line(row: tuple[Any, ...]) -> str:
    """One export row as a JSON line (no newline)."""
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
    """Write every feedback row changed at or after `since` (all when None) to `out`.

    Returns the number of rows written. One read-only transaction: the export is a
    consistent snapshot, even while users keep giving feedback.
    """
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


async def export_command(settings: Settings, since: datetime | None) -> int:
    """`feedback export`: JSON lines on stdout, errors as one line on stderr.

    Exit codes: 0 done, 1 the database cannot be reached or has no feedback table.
    """

    async def export(conninfo: str) -> int:
        await export_feedback(conninfo, sys.stdout, since)
        sys.stdout.flush()
        return 0

    try:
        return await admin_command(settings, "feedback export", "no feedback table", export)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
