"""The store's SQL: every statement is scoped to the user and safe to run twice."""

from __future__ import annotations

from psycopg import sql

SAVE_THREAD = """
INSERT INTO threads AS t (id, user_id, created_at, payload)
VALUES (%(id)s, %(user)s, %(created_at)s, %(payload)s::jsonb)
ON CONFLICT (id) DO UPDATE
SET created_at = EXCLUDED.created_at, payload = EXCLUDED.payload, updated_at = now()
WHERE t.user_id = EXCLUDED.user_id
RETURNING 1
"""

LOAD_THREAD = "SELECT payload::text FROM threads WHERE id = %(id)s AND user_id = %(user)s"

DELETE_THREAD = "DELETE FROM threads WHERE id = %(id)s AND user_id = %(user)s RETURNING 1"

# Only into a thread the user owns; an existing id is updated, never duplicated.
SAVE_ITEM = """
INSERT INTO thread_items AS i (thread_id, id, created_at, payload)
SELECT t.id, %(id)s, %(created_at)s, %(payload)s::jsonb
FROM threads AS t
WHERE t.id = %(thread)s AND t.user_id = %(user)s
ON CONFLICT (thread_id, id) DO UPDATE
SET created_at = EXCLUDED.created_at, payload = EXCLUDED.payload, updated_at = now()
RETURNING 1
"""

LOAD_ITEM = """
SELECT i.payload::text
FROM thread_items AS i JOIN threads AS t ON t.id = i.thread_id
WHERE i.thread_id = %(thread)s AND i.id = %(id)s AND t.user_id = %(user)s
"""

DELETE_ITEM = """
DELETE FROM thread_items AS i USING threads AS t
WHERE i.thread_id = %(thread)s AND i.id = %(id)s AND t.id = i.thread_id AND t.user_id = %(user)s
"""

# `thread_id` (deleted with that thread) only ever names the user's own thread, once set.
SAVE_ATTACHMENT = """
INSERT INTO attachments AS a (id, user_id, thread_id, payload)
VALUES (
    %(id)s,
    %(user)s,
    (SELECT t.id FROM threads AS t WHERE t.id = %(thread)s AND t.user_id = %(user)s),
    %(payload)s::jsonb
)
ON CONFLICT (id) DO UPDATE
SET payload = EXCLUDED.payload,
    thread_id = COALESCE(EXCLUDED.thread_id, a.thread_id),
    updated_at = now()
WHERE a.user_id = EXCLUDED.user_id
RETURNING 1
"""

LOAD_ATTACHMENT = "SELECT payload::text FROM attachments WHERE id = %(id)s AND user_id = %(user)s"

DELETE_ATTACHMENT = "DELETE FROM attachments WHERE id = %(id)s AND user_id = %(user)s"

# Written once: (found, saved) tells a missing attachment from one that has its bytes.
SAVE_ATTACHMENT_CONTENT = """
WITH owned AS (
    SELECT a.id FROM attachments AS a WHERE a.id = %(id)s AND a.user_id = %(user)s
), saved AS (
    INSERT INTO attachment_contents (attachment_id, content)
    SELECT id, %(content)b FROM owned
    ON CONFLICT (attachment_id) DO NOTHING
    RETURNING 1
), sized AS (
    UPDATE attachments SET size = %(size)s
    WHERE id = %(id)s AND EXISTS (SELECT 1 FROM saved)
)
SELECT EXISTS (SELECT 1 FROM owned), EXISTS (SELECT 1 FROM saved)
"""

LOAD_ATTACHMENT_CONTENT = """
SELECT c.content FROM attachment_contents AS c JOIN attachments AS a ON a.id = c.attachment_id
WHERE a.id = %(id)s AND a.user_id = %(user)s
"""

# Each size, and the bytes only of the longest prefix (in list order) within the budget, each
# counted with an overhead (what sending it inline adds).
LOAD_ATTACHMENT_CONTENTS = """
SELECT id, size, CASE WHEN fits THEN content END, CASE WHEN fits THEN object_key END
FROM (
    SELECT w.id, z.size, c.content, a.object_key,
           sum(z.size + %(overhead)s::bigint) OVER (ORDER BY w.ord) <= %(budget)s AS fits
    FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS w(id, ord)
    JOIN attachments AS a ON a.id = w.id AND a.user_id = %(user)s
    LEFT JOIN attachment_contents AS c ON c.attachment_id = a.id
    CROSS JOIN LATERAL (SELECT COALESCE(octet_length(c.content), a.size) AS size) AS z
    WHERE c.content IS NOT NULL OR a.object_key IS NOT NULL
) AS s
"""

# All or nothing: rows are written only when every distinct id is an item the user owns.
SAVE_FEEDBACK = """
WITH owned AS (
    SELECT i.thread_id, i.id
    FROM thread_items AS i JOIN threads AS t ON t.id = i.thread_id
    WHERE i.thread_id = %(thread)s AND i.id = ANY(%(ids)s::text[]) AND t.user_id = %(user)s
)
INSERT INTO feedback AS f (thread_id, item_id, user_id, kind)
SELECT o.thread_id, o.id, %(user)s, %(kind)s
FROM owned AS o
WHERE (SELECT count(*) FROM owned)
    = (SELECT count(DISTINCT id) FROM unnest(%(ids)s::text[]) AS id)
ON CONFLICT (thread_id, item_id, user_id) DO UPDATE
SET kind = EXCLUDED.kind, updated_at = now()
RETURNING f.item_id
"""


KEYSET_PAGE = """
SELECT p.payload::text, p.created_at, p.seq
FROM <anchor>
LEFT JOIN LATERAL (
    SELECT payload, created_at, seq FROM <rows>
    WHERE <where>
    ORDER BY created_at {dir}, seq {dir}
    LIMIT %(limit)s
) AS p ON true
WHERE <owned>
ORDER BY p.created_at {dir}, p.seq {dir}
"""


def keyset_page(anchor: str, rows: str, where: str, owned: str) -> str:
    """A page of `rows` after the `anchor` row: no row means "not found", one row with a
    NULL payload "found, but the page is empty"."""
    parts = {"<anchor>": anchor, "<rows>": rows, "<where>": where, "<owned>": owned}
    query = KEYSET_PAGE
    for name, part in parts.items():
        query = query.replace(name, part)
    return query


AFTER_CURSOR = "(created_at, seq) {cmp} (c.created_at, c.seq)"
OWNED_THREAD = "t.id = %(thread)s AND t.user_id = %(user)s"

THREADS_PAGE = """
SELECT payload::text, created_at, seq FROM threads
WHERE user_id = %(user)s
ORDER BY created_at {dir}, seq {dir}
LIMIT %(limit)s
"""
THREADS_PAGE_AFTER = keyset_page(
    "threads AS c",
    "threads",
    f"user_id = c.user_id AND {AFTER_CURSOR}",
    "c.id = %(after)s AND c.user_id = %(user)s",
)
ITEMS_PAGE = keyset_page("threads AS t", "thread_items", "thread_id = t.id", OWNED_THREAD)
ITEMS_PAGE_AFTER = keyset_page(
    "threads AS t JOIN thread_items AS c ON c.thread_id = t.id AND c.id = %(after)s",
    "thread_items",
    f"thread_id = t.id AND {AFTER_CURSOR}",
    OWNED_THREAD,
)


def ordered(template: str) -> dict[str, sql.Composed]:
    """The query for each order: `asc` walks forwards from the cursor, `desc` backwards."""
    return {
        order: sql.SQL(template).format(dir=sql.SQL(direction), cmp=sql.SQL(cmp))
        for order, direction, cmp in (("asc", "ASC", ">"), ("desc", "DESC", "<"))
    }


THREADS_QUERIES = {False: ordered(THREADS_PAGE), True: ordered(THREADS_PAGE_AFTER)}
ITEMS_QUERIES = {False: ordered(ITEMS_PAGE), True: ordered(ITEMS_PAGE_AFTER)}
