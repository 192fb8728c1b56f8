"""`threads lock|close|unlock` and `users export|delete`: they act on any user's rows, so an
operator runs them."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..settings import Settings
from ..store.db import connect
from ..store.thread_status import (
    MAX_REASON_CHARS,
    PAST,
    StatusName,
    set_status_of_any_thread,
    status_of,
)
from ..store.user_rows import UncoveredTables, count_rows, delete_user, export_user, user_tables
from .admin import admin_command


async def threads_status_command(
    settings: Settings, thread_id: str, name: StatusName, reason: str | None, as_json: bool
) -> int:
    """`threads lock|close|unlock`: exit 0 done, 1 no such thread or no database."""
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        print(f"error: --reason is over {MAX_REASON_CHARS} characters", file=sys.stderr)
        return 2

    async def change(conninfo: str) -> int:
        owner = await set_status_of_any_thread(conninfo, thread_id, name, reason)
        if owner is None:
            print(f"error: no thread {thread_id}", file=sys.stderr)
            return 1
        if as_json:
            status = json.loads(status_of(name, reason).model_dump_json())
            print(json.dumps({"thread_id": thread_id, "user_id": owner, "status": status}))
        else:
            print(f"{PAST[name]} thread {thread_id} (user {owner})")
        return 0

    verb = {"active": "unlock", "locked": "lock", "closed": "close"}[name]
    return await admin_command(settings, f"threads {verb}", "no threads table", change)


def confirmed(user_id: str, counts: dict[str, int]) -> bool:
    """Ask on the terminal; only the user id typed back confirms."""
    print(f"about to delete every row of user {user_id}: {describe(counts)}", file=sys.stderr)
    print("this cannot be undone; type the user id to confirm: ", end="", file=sys.stderr)
    sys.stderr.flush()
    return sys.stdin.readline().strip() == user_id


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {table}" for table, n in counts.items() if n) or "no rows"


async def users_delete_command(settings: Settings, user_id: str, yes: bool, as_json: bool) -> int:
    """`users delete`: exit 0 deleted (or nothing to delete), 1 declined or failed, 2 neither
    --yes nor a terminal to ask on."""
    if not yes and not sys.stdin.isatty():
        print(
            f"error: refusing to delete user {user_id} without confirmation: pass --yes "
            "(stdin is not a terminal to ask on)",
            file=sys.stderr,
        )
        return 2

    async def delete(conninfo: str) -> int:
        if not yes:
            async with await connect(conninfo) as conn:
                counts = await count_rows(conn, user_id, await user_tables(conn))
            if any(counts.values()) and not confirmed(user_id, counts):
                print("not confirmed: nothing deleted", file=sys.stderr)
                return 1
        removed = await delete_user(conninfo, user_id)
        if as_json:
            print(json.dumps({"user_id": user_id, "deleted": removed}))
        elif any(removed.values()):
            print(f"deleted user {user_id}: {describe(removed)}")
        else:
            print(f"user {user_id} has no rows: nothing deleted")
        return 0

    return await _guarded(settings, "users delete", delete)


async def _guarded(settings: Settings, what: str, work: Any) -> int:
    async def run(conninfo: str) -> int:
        try:
            return int(await work(conninfo))
        except UncoveredTables as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return await admin_command(settings, what, "no user tables", run)


async def users_export_command(settings: Settings, user_id: str, out_path: Path | None) -> int:
    """`users export`: the document on stdout or in `out_path` (0600, complete or absent);
    what was exported on stderr. Exit 0 done, 1 failed."""

    async def export(conninfo: str) -> int:
        try:
            if out_path is None:
                counts = await export_user(conninfo, user_id, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                counts = await export_to_file(conninfo, user_id, out_path)
        except OSError as exc:
            print(f"error: cannot write {out_path or 'stdout'}: {exc.strerror}", file=sys.stderr)
            return 1
        where = f" to {out_path}" if out_path else ""
        print(f"exported user {user_id}{where}: {describe(counts)}", file=sys.stderr)
        return 0

    return await _guarded(settings, "users export", export)


async def export_to_file(conninfo: str, user_id: str, path: Path) -> dict[str, int]:
    """Export into a private temporary file beside `path`, renamed once complete."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            counts = await export_user(conninfo, user_id, out)
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return counts
