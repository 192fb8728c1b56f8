"""The operator's side of ATTACHMENT_STORAGE: the start-up check, `attachments move --to
s3|postgres`, the objects `db prune` and `users delete` remove, and `users show`."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, Literal

from ..compat.obstore_exit import exit_process
from ..settings import Settings
from ..store.blob_storage import (
    BlobStorage,
    StorageUnavailable,
    check_storage,
    drain_deletions,
    open_blob_storage,
    sweep_objects,
)
from ..store.db import connect
from ..store.object_moves import move_all
from ..store.upload_leases import user_storage
from .admin import admin_command


def exit_if_unusable(problem: str | None) -> None:
    """Print the bucket's problem, if any, and end with exit code 2."""
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr, flush=True)
        exit_process(2)


def storage_problem(settings: Settings) -> str | None:
    """Why the configured bucket cannot be used (one line, no secret), or None."""
    try:
        blobs = open_blob_storage(settings)
        if blobs is not None:
            asyncio.run(check_storage(blobs))
    except StorageUnavailable as exc:
        return str(exc)
    return None


async def remove_objects(settings: Settings, conninfo: str, sweep: bool) -> tuple[int, int]:
    """Delete the queued objects (rows deleted) and, with `sweep`, the objects no row names
    older than a day: (queued removed, swept). Nothing to do without a bucket."""
    blobs = open_blob_storage(settings)
    if blobs is None:
        return 0, 0
    async with await connect(conninfo) as conn:
        drained = await drain_deletions(conn, blobs)
        swept = await sweep_objects(conn, blobs) if sweep else 0
    return drained, swept


def move_blobs(settings: Settings) -> BlobStorage:
    """The bucket a move goes to or comes from: ATTACHMENT_STORAGE names it."""
    blobs = open_blob_storage(settings)
    if blobs is None:
        raise StorageUnavailable(
            "set ATTACHMENT_STORAGE=s3://BUCKET/PREFIX (and the S3 settings) to the bucket to "
            "move to or from"
        )
    return blobs


async def move_command(
    settings: Settings, to: Literal["s3", "postgres"], as_json: bool = False
) -> int:
    """`attachments move --to s3|postgres`: copy each attachment's and image's bytes, one
    at a time, then point its row at the copy; resumable and safe to run twice."""
    try:
        blobs = move_blobs(settings)
        await check_storage(blobs)
    except StorageUnavailable as exc:
        exit_if_unusable(str(exc))

    async def move(conninfo: str) -> int:
        async with await connect(conninfo) as conn:
            moved = {
                "attachments": await move_all(conn, blobs, "attachments", to),
                "images": await move_all(conn, blobs, "images", to),
            }
            removed = await drain_deletions(conn, blobs)
        if as_json:
            print(json.dumps({"to": to, "moved": moved, "objects_deleted": removed}))
        else:
            where = blobs.where() if to == "s3" else "PostgreSQL"
            print(
                f"moved {moved['attachments']} attachments and {moved['images']} generated "
                f"images to {where}" + (f" ({removed} objects deleted)" if removed else "")
            )
        return 0

    return await admin_command(settings, "attachments move", "no attachment tables", move)


async def show_command(settings: Settings, user_id: str, as_json: bool = False) -> int:
    """`users show`: the user's kept bytes and uploads against their limits."""

    async def show(conninfo: str) -> int:
        async with await connect(conninfo) as conn:
            kept, count, running = await user_storage(conn, user_id)
        figures: dict[str, Any] = {
            "user_id": user_id,
            "storage_bytes": kept,
            "storage_quota_bytes": settings.user_storage_bytes,
            "attachments": count,
            "uploads_in_flight": running,
            "max_uploads_in_flight": settings.max_uploads_in_flight_per_user,
            "uploads_per_minute": settings.rate_limit_uploads_per_minute,
            "attachment_storage": settings.attachment_storage,
        }
        if as_json:
            print(json.dumps(figures))
            return 0
        quota = settings.user_storage_bytes
        print(f"user {user_id}")
        print(
            f"  storage: {kept:,} bytes in {count} attachments"
            + (f" of {quota:,} ({kept * 100 // quota}%)" if quota else " (no quota)")
        )
        print(
            f"  uploads: {running} running (at most {settings.max_uploads_in_flight_per_user}), "
            f"at most {settings.rate_limit_uploads_per_minute} a minute"
        )
        return 0

    return await admin_command(settings, "users show", "no user tables", show)
