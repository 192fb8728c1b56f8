"""Thread status: a locked or closed thread refuses new work (409). `set_status` for routes and
tools (as the user), and for any user's thread (the `threads` operator commands)."""

from __future__ import annotations

from typing import Literal

from chatkit.types import ActiveStatus, ClosedStatus, LockedStatus, ThreadMetadata, ThreadStatus

from ..context import RequestContext
from ..errors import AppError
from .db import connect
from .postgres import PostgresStore

StatusName = Literal["active", "locked", "closed"]
MAX_REASON_CHARS = 500
"""Longest reason kept (ChatKit shows it in the composer or a banner)."""
PAST = {"active": "unlocked", "locked": "locked", "closed": "closed"}

# Not scoped to a user: the operator names the thread. The payload is the SDK's model as
# JSON, so the status is its `status` field.
SET_STATUS = """
UPDATE threads SET payload = jsonb_set(payload, '{status}', %(status)s::jsonb), updated_at = now()
WHERE id = %(id)s
RETURNING user_id
"""


class ThreadNotOpen(AppError):
    """The thread is locked or closed: it takes no messages, retries, actions or tool output."""

    status = 409


def status_of(name: StatusName, reason: str | None = None) -> ThreadStatus:
    """The SDK's status object (`reason` is dropped for active threads)."""
    reason = reason[:MAX_REASON_CHARS] if reason else None
    if name == "locked":
        return LockedStatus(reason=reason)
    if name == "closed":
        return ClosedStatus(reason=reason)
    return ActiveStatus()


def ensure_open(thread: ThreadMetadata) -> None:
    """Raise ThreadNotOpen (409 `thread_locked` / `thread_closed`, with the reason) unless the
    thread is active."""
    status = thread.status
    if isinstance(status, ActiveStatus):
        return
    because = f": {status.reason}" if status.reason else ""
    raise ThreadNotOpen(
        f"this thread is {status.type}{because}", code=f"thread_{status.type}", reason=status.reason
    )


async def set_status(
    store: PostgresStore,
    thread_id: str,
    name: StatusName,
    reason: str | None,
    context: RequestContext,
) -> ThreadMetadata:
    """Lock, close or reopen a thread of the context's user (NotFoundError otherwise); inside a
    running turn, set `thread.status` instead (the SDK saves and streams it)."""
    thread = await store.load_thread(thread_id, context)
    thread.status = status_of(name, reason)
    await store.save_thread(thread, context)
    return thread


async def set_status_of_any_thread(
    conninfo: str, thread_id: str, name: StatusName, reason: str | None
) -> str | None:
    """Set the status of a thread whoever owns it; its owner's id, or None when it is missing."""
    status = status_of(name, reason).model_dump_json()
    async with await connect(conninfo) as conn:
        cursor = await conn.execute(SET_STATUS, {"status": status, "id": thread_id})
        row = await cursor.fetchone()
    return str(row[0]) if row else None
