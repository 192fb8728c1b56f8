"""Uploads running per user and bytes kept per user, in PostgreSQL so they hold across
instances: MAX_UPLOADS_IN_FLIGHT_PER_USER and USER_STORAGE_BYTES (http/upload_limits.py)."""

from __future__ import annotations

from typing import Any

import psycopg

from .postgres import PostgresStore

UPLOAD_LEASE_SECONDS = 60.0
"""A running upload renews its lease; one whose instance died frees its slot after this."""

_NOW = "extract(epoch FROM now())::float8"
STORED = "(SELECT COALESCE(sum(size), 0) FROM attachments WHERE user_id = %(user)s::text)"
_LIVE = f"FROM jsonb_each(l.uploads) AS e WHERE (e.value ->> 0)::float8 > {_NOW}"

# One UPDATE of the user's row decides and takes the lease `[expiry, bytes]` (as START_TURN):
# concurrent uploads queue on the row lock; the quota counts bytes kept plus those reserved.
TAKE_UPLOAD = f"""
UPDATE user_limits AS l
SET uploads = (
    SELECT CASE WHEN (%(max_uploads)s::integer = 0 OR live.n < %(max_uploads)s::integer)
                 AND (%(quota)s::bigint = 0
                      OR {STORED} + live.held + %(bytes)s::bigint <= %(quota)s::bigint)
                THEN live.leases || jsonb_build_object(%(lease)s::text, jsonb_build_array(
                         {_NOW} + %(lease_seconds)s::float8, %(bytes)s::bigint))
                ELSE live.leases END
    FROM (
        SELECT COALESCE(jsonb_object_agg(e.key, e.value), jsonb_build_object()) AS leases,
               count(*) AS n, COALESCE(sum((e.value ->> 1)::bigint), 0) AS held
        {_LIVE}
    ) AS live
)
WHERE l.user_id = %(user)s::text
RETURNING l.uploads ? %(lease)s::text,
          (SELECT count(*) {_LIVE}),
          {STORED},
          (SELECT min((e.value ->> 0)::float8) {_LIVE}) - {_NOW}
"""  # noqa: S608 (built from the constants above)

RENEW_UPLOAD = f"""
UPDATE user_limits
SET uploads = jsonb_set(uploads, ARRAY[%(lease)s::text, '0'],
                        to_jsonb({_NOW} + %(lease_seconds)s::float8))
WHERE user_id = %(user)s::text AND uploads ? %(lease)s::text
"""  # noqa: S608 (built from the constants above)

RELEASE_UPLOAD = """
UPDATE user_limits SET uploads = uploads - %(lease)s::text WHERE user_id = %(user)s::text
"""

# `users show`: what the user keeps and is sending now.
USER_STORAGE = f"""
SELECT {STORED}, (SELECT count(*) FROM attachments WHERE user_id = %(user)s::text),
       (SELECT count(*) FROM user_limits AS l, jsonb_each(l.uploads) AS e
        WHERE l.user_id = %(user)s::text AND (e.value ->> 0)::float8 > {_NOW})
"""  # noqa: S608 (built from the constants above)

ENSURE_ROW = """
INSERT INTO user_limits (user_id, allowance, checked_at) VALUES (%(user)s::text, 0, now())
ON CONFLICT (user_id) DO NOTHING RETURNING 1
"""


async def take_upload(
    store: PostgresStore, params: dict[str, Any]
) -> tuple[bool, int, int, float | None]:
    """(granted, uploads running, bytes kept, seconds until the soonest lease lapses)."""
    rows = await store.execute(TAKE_UPLOAD, params)
    if not rows:
        await store.execute(ENSURE_ROW, params)
        rows = await store.execute(TAKE_UPLOAD, params)
    granted, running, stored, soonest = rows[0]
    return bool(granted), int(running), int(stored), soonest


async def renew_upload(store: PostgresStore, user_id: str, lease: str) -> None:
    params = {"user": user_id, "lease": lease, "lease_seconds": UPLOAD_LEASE_SECONDS}
    await store.execute(RENEW_UPLOAD + " RETURNING 1", params)


async def user_storage(conn: psycopg.AsyncConnection[Any], user_id: str) -> tuple[int, int, int]:
    """(bytes kept, attachments kept, uploads running) for `users show`."""
    row = await (await conn.execute(USER_STORAGE, {"user": user_id})).fetchone()
    kept, count, running = row if row is not None else (0, 0, 0)
    return int(kept), int(count), int(running)


async def release_upload(store: PostgresStore, user_id: str, lease: str) -> None:
    await store.execute(RELEASE_UPLOAD + " RETURNING 1", {"user": user_id, "lease": lease})
