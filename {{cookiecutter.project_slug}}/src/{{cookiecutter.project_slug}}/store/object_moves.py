"""`attachments move`: bytes from PostgreSQL to the bucket or back, one file at a time, each row
switched after its copy is made: it resumes where it stopped, and a second run does nothing."""

from __future__ import annotations

from typing import Any, Literal

import psycopg

from .blob_storage import BlobStorage, attachment_key, image_key

BATCH = 100

# Rows to move, by id after the last one seen (a file that cannot be read is passed over).
TO_S3_IDS = {
    "attachments": """
SELECT a.id FROM attachments AS a JOIN attachment_contents AS c ON c.attachment_id = a.id
WHERE a.object_key IS NULL AND a.id > %(after)s ORDER BY a.id LIMIT %(batch)s""",
    "images": """
SELECT id FROM generated_images
WHERE object_key IS NULL AND content IS NOT NULL AND id > %(after)s ORDER BY id LIMIT %(batch)s""",
}
TO_POSTGRES_IDS = {
    "attachments": """
SELECT id FROM attachments WHERE object_key IS NOT NULL AND id > %(after)s
ORDER BY id LIMIT %(batch)s""",
    "images": """
SELECT id FROM generated_images WHERE object_key IS NOT NULL AND id > %(after)s
ORDER BY id LIMIT %(batch)s""",
}
READ_PG = {
    "attachments": """
SELECT COALESCE(a.payload ->> 'mime_type', 'application/octet-stream'), c.content
FROM attachments AS a JOIN attachment_contents AS c ON c.attachment_id = a.id
WHERE a.id = %(id)s AND a.object_key IS NULL""",
    "images": """
SELECT mime_type, content FROM generated_images
WHERE id = %(id)s AND object_key IS NULL AND content IS NOT NULL""",
}
POINT_TO_OBJECT = {
    "attachments": """
WITH moved AS (
    UPDATE attachments SET object_key = %(key)s, size = %(size)s
    WHERE id = %(id)s AND object_key IS NULL RETURNING id
)
DELETE FROM attachment_contents WHERE attachment_id IN (SELECT id FROM moved)
RETURNING 1""",
    "images": """
UPDATE generated_images SET object_key = %(key)s, size = %(size)s, content = NULL
WHERE id = %(id)s AND object_key IS NULL RETURNING 1""",
}
KEY_OF = {
    "attachments": "SELECT object_key FROM attachments WHERE id = %(id)s",
    "images": "SELECT object_key FROM generated_images WHERE id = %(id)s",
}
# The object's key goes to the deletion queue (migration 0009's trigger) as the row lets go.
POINT_TO_CONTENT = {
    "attachments": """
WITH saved AS (
    INSERT INTO attachment_contents (attachment_id, content)
    SELECT id, %(content)b FROM attachments WHERE id = %(id)s AND object_key = %(key)s
    ON CONFLICT (attachment_id) DO NOTHING
)
UPDATE attachments SET object_key = NULL, size = %(size)s
WHERE id = %(id)s AND object_key = %(key)s RETURNING 1""",
    "images": """
UPDATE generated_images SET content = %(content)b, object_key = NULL, size = %(size)s
WHERE id = %(id)s AND object_key = %(key)s RETURNING 1""",
}

Kind = Literal["attachments", "images"]


async def _ids(conn: psycopg.AsyncConnection[Any], query: str, after: str) -> list[str]:
    rows = await (await conn.execute(query, {"after": after, "batch": BATCH})).fetchall()
    return [str(row[0]) for row in rows]


async def move_all(
    conn: psycopg.AsyncConnection[Any],
    blobs: BlobStorage,
    kind: Kind,
    to: Literal["s3", "postgres"],
) -> int:
    """Move every `kind` row's bytes to `to`; how many moved."""
    moved, after = 0, ""
    key_of = attachment_key if kind == "attachments" else image_key
    listing = TO_S3_IDS[kind] if to == "s3" else TO_POSTGRES_IDS[kind]
    while ids := await _ids(conn, listing, after):
        after = ids[-1]
        for row_id in ids:
            if to == "s3":
                moved += await _to_bucket(conn, blobs, kind, row_id, key_of(row_id))
            else:
                moved += await _to_postgres(conn, blobs, kind, row_id)
    return moved


async def _to_bucket(
    conn: psycopg.AsyncConnection[Any], blobs: BlobStorage, kind: Kind, row_id: str, key: str
) -> int:
    row = await (await conn.execute(READ_PG[kind], {"id": row_id})).fetchone()
    if row is None:  # deleted or moved meanwhile
        return 0
    content = bytes(row[1])
    await blobs.put(key, content, str(row[0]))
    params = {"id": row_id, "key": key, "size": len(content)}
    if await (await conn.execute(POINT_TO_OBJECT[kind], params)).fetchall():
        return 1
    if await (await conn.execute(KEY_OF[kind], {"id": row_id})).fetchone() is None:
        await blobs.delete([key])  # the row went meanwhile: so does its copy
    return 0


async def _to_postgres(
    conn: psycopg.AsyncConnection[Any], blobs: BlobStorage, kind: Kind, row_id: str
) -> int:
    row = await (await conn.execute(KEY_OF[kind], {"id": row_id})).fetchone()
    if row is None or row[0] is None:
        return 0
    key = str(row[0])
    try:
        content = await blobs.get(key)
    except FileNotFoundError:  # an upload that never finished: nothing to move
        return 0
    params = {"id": row_id, "key": key, "content": content, "size": len(content)}
    rows = await (await conn.execute(POINT_TO_CONTENT[kind], params)).fetchall()
    return 1 if rows else 0
