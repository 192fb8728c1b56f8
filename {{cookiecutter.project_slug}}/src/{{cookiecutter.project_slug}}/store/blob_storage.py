"""Where attachment and generated image bytes live: PostgreSQL (no BlobStorage) or an S3 bucket
(`S3Blobs`); the rows name their objects, and objects whose row went are deleted from a queue
that triggers fill (migration 0009; docs/design_decisions.md, "Object storage")."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

import psycopg

from ..settings import Settings

logger = logging.getLogger(__name__)

ATTACHMENTS_FOLDER = "attachments"
IMAGES_FOLDER = "images"
SWEEP_AGE = timedelta(days=1)
"""An object with no row is an upload still finishing for a moment; after a day, left over."""
DRAIN_BATCH = 1000


class BlobStorage(Protocol):
    """An object store (store/s3_blobs.py's S3Blobs); keys are relative to its prefix."""

    def where(self) -> str: ...

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str, disposition: str
    ) -> int: ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, keys: list[str]) -> None: ...

    def presign(self, key: str, seconds: int) -> str: ...

    def older_than(self, folder: str, age: timedelta) -> AsyncIterator[list[str]]: ...

    async def check(self) -> None: ...


class StorageUnavailable(RuntimeError):
    """ATTACHMENT_STORAGE names a bucket this process cannot use (one line, no secret)."""


def open_blob_storage(settings: Settings) -> BlobStorage | None:
    """The configured bucket (None: bytes in PostgreSQL); StorageUnavailable without the
    `s3` extra."""
    where = bucket_and_prefix(settings)
    if where is None:
        return None
    try:
        from .s3_blobs import S3Blobs
    except ImportError:
        raise StorageUnavailable(
            "ATTACHMENT_STORAGE=s3://... needs the s3 extra: pip install '.[s3]'"
        ) from None
    return S3Blobs(where[0], where[1], settings.s3_endpoint_url or None, settings.s3_region or None)


def bucket_and_prefix(settings: Settings) -> tuple[str, str] | None:
    """(bucket, prefix) of ATTACHMENT_STORAGE=s3://BUCKET/PREFIX; None for postgres."""
    if settings.attachment_storage == "postgres":
        return None
    bucket, _, prefix = settings.attachment_storage.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


async def check_storage(blobs: BlobStorage) -> None:
    """Write, read and delete under the prefix; StorageUnavailable naming what failed."""
    try:
        await blobs.check()
    except Exception as exc:
        reason = type(exc).__name__
        hint = str(exc).splitlines()[0] if str(exc) else ""
        hint = hint if len(hint) <= 160 else hint[:159] + "…"
        if "credential" in hint.lower() or "secret" in hint.lower() or "signature" in hint.lower():
            hint = "check the AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        raise StorageUnavailable(
            f"attachment storage {blobs.where()} cannot write, read and delete: {reason}"
            + (f" ({hint})" if hint else "")
        ) from None


def attachment_key(attachment_id: str) -> str:
    return f"{ATTACHMENTS_FOLDER}/{attachment_id}"


def image_key(image_id: str) -> str:
    return f"{IMAGES_FOLDER}/{image_id}"


def disposition(mime_type: str) -> str:
    return "inline" if mime_type.startswith("image/") else "attachment"


# An upload claims its key before sending: one upload per attachment, even two at once.
CLAIM_OBJECT = """
UPDATE attachments AS a SET object_key = %(key)s
WHERE a.id = %(id)s AND a.user_id = %(user)s AND a.object_key IS NULL
  AND NOT EXISTS (SELECT 1 FROM attachment_contents AS c WHERE c.attachment_id = a.id)
RETURNING 1
"""
SET_SIZE = """
UPDATE attachments SET size = %(size)s WHERE id = %(id)s AND object_key = %(key)s RETURNING 1
"""
# A failed upload gives its claim back (its key goes to the queue: no object is left).
UNCLAIM_OBJECT = """
UPDATE attachments SET object_key = NULL WHERE id = %(id)s AND object_key = %(key)s RETURNING 1
"""
ATTACHMENT_OBJECT = """
SELECT object_key FROM attachments WHERE id = %(id)s AND user_id = %(user)s
"""

NEXT_DELETIONS = """
SELECT object_key FROM object_deletions ORDER BY queued_at LIMIT %(batch)s
"""
DONE_DELETIONS = "DELETE FROM object_deletions WHERE object_key = ANY(%(keys)s::text[])"

# Of the listed keys, those that no row names (the sweep deletes them).
UNNAMED_KEYS = """
SELECT k FROM unnest(%(keys)s::text[]) AS k
WHERE NOT EXISTS (SELECT 1 FROM attachments WHERE object_key = k)
  AND NOT EXISTS (SELECT 1 FROM generated_images WHERE object_key = k)
"""


async def drain_deletions(conn: psycopg.AsyncConnection[Any], blobs: BlobStorage) -> int:
    """Delete the queued objects (their rows are gone), then their queue entries; how many."""
    removed = 0
    while True:
        rows = await (await conn.execute(NEXT_DELETIONS, {"batch": DRAIN_BATCH})).fetchall()
        keys = [str(row[0]) for row in rows]
        if not keys:
            return removed
        await blobs.delete(keys)
        await conn.execute(DONE_DELETIONS, {"keys": keys})
        await conn.commit()
        removed += len(keys)


async def sweep_objects(
    conn: psycopg.AsyncConnection[Any], blobs: BlobStorage, age: timedelta = SWEEP_AGE
) -> int:
    """Delete objects no row names that are older than `age` (a crash between an upload and
    its row); how many."""
    removed = 0
    for folder in (ATTACHMENTS_FOLDER, IMAGES_FOLDER):
        async for keys in blobs.older_than(folder, age):
            if not keys:
                continue
            rows = await (await conn.execute(UNNAMED_KEYS, {"keys": keys})).fetchall()
            unnamed = [str(row[0]) for row in rows]
            await blobs.delete(unnamed)
            removed += len(unnamed)
    return removed


async def drain_quietly(blobs: BlobStorage | None, open_pool: Callable[[], Awaitable[Any]]) -> None:
    """`drain_deletions` after a delete; a failure leaves the keys queued (logged)."""
    if blobs is None:
        return
    try:
        async with (await open_pool()).connection() as conn:
            await drain_deletions(conn, blobs)
    except Exception as exc:
        logger.warning("objects left for db prune to delete: %s", type(exc).__name__)


async def sizes_and_contents(
    blobs: BlobStorage | None, rows: list[tuple[Any, ...]]
) -> dict[str, tuple[int, bytes | None]]:
    """Rows (id, size, bytes or None, object key or None) as {id: (size, bytes or None)}, the
    bytes of a row that names an object read from the bucket."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for object_id, size, content, key in rows:
        content = await blobs.get(key) if key and blobs else content
        found[object_id] = (int(size), bytes(content) if content is not None else None)
    return found
