"""PostgresStore: the ChatKit store (threads, items, attachments) on PostgreSQL.

Payloads are the SDK's pydantic models stored as JSONB; the columns beside them serve
scoping (`user_id`), lookups and ordering (`created_at`, then `seq` as a tie-break).
Every query is scoped to `context.user.id`: another user's rows are "not found".
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import psycopg
from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import (
    Attachment,
    GeneratedImageItem,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
)
from psycopg import sql
from psycopg_pool import PoolTimeout
from pydantic import TypeAdapter, ValidationError

from ..context import RequestContext
from ..dev.embedded import resolve_url
from ..settings import EMBEDDED, EMBEDDED_DATA_DIR
from .db import Pool, create_pool

logger = logging.getLogger(__name__)
# Loading a stored widget is not "direct usage" of the widget classes the SDK warns about.
warnings.filterwarnings(
    "ignore", message="Direct usage of named widget classes", category=DeprecationWarning
)

Order = Literal["asc", "desc"]
T = TypeVar("T", ThreadMetadata, ThreadItem)

THREAD = TypeAdapter(ThreadMetadata)
ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)

PrepareAttachment = Callable[[Attachment, RequestContext], None]


class AttachmentContentExists(Exception):
    """The attachment already has its uploaded bytes (they are written once)."""


ITEM_ID_KIND: Mapping[str, StoreItemType] = {
    "client_tool_call": "tool_call",
    "task": "task",
    "workflow": "workflow",
    "sdk_hidden_context": "sdk_hidden_context",
}

# --- SQL ------------------------------------------------------------------------------

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

# Insert only into a thread the user owns; an existing id is updated, never duplicated.
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

# `thread_id` (the column: attachments are deleted with their thread) is set only to a
# thread the same user owns, and never cleared once set.
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

# Content is written once: (found, saved) tells a missing attachment from one that has it.
SAVE_ATTACHMENT_CONTENT = """
WITH owned AS (
    SELECT a.id FROM attachments AS a WHERE a.id = %(id)s AND a.user_id = %(user)s
), saved AS (
    INSERT INTO attachment_contents (attachment_id, content)
    SELECT id, %(content)s FROM owned
    ON CONFLICT (attachment_id) DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM owned), EXISTS (SELECT 1 FROM saved)
"""

LOAD_ATTACHMENT_CONTENT = """
SELECT c.content FROM attachment_contents AS c JOIN attachments AS a ON a.id = c.attachment_id
WHERE a.id = %(id)s AND a.user_id = %(user)s
"""

# The size of each of the user's attachments that has content, and the bytes of those in the
# longest prefix of the list (in its order) whose sizes add up to at most the budget: the
# history's attachments in one statement; the bytes of the rest are not read.
LOAD_ATTACHMENT_CONTENTS = """
SELECT w.id, octet_length(c.content),
       CASE WHEN sum(octet_length(c.content)) OVER (ORDER BY w.ord) <= %(budget)s
            THEN c.content END
FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS w(id, ord)
JOIN attachments AS a ON a.id = w.id AND a.user_id = %(user)s
JOIN attachment_contents AS c ON c.attachment_id = a.id
"""

# Feedback on items of a thread the user owns, all or nothing: `owned` finds the named
# items (each once, however often it is named); the insert runs only when every distinct
# id was found, so a missing or foreign id writes no row. Latest kind wins.
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

FEEDBACK_KINDS = frozenset({"positive", "negative"})

# Keyset pages. The anchor row (the thread, or the `after` cursor) comes first: no row at
# all means "not found"; a row with a NULL payload means "found, but the page is empty".
THREADS_PAGE = """
SELECT payload::text, created_at, seq FROM threads
WHERE user_id = %(user)s
ORDER BY created_at {dir}, seq {dir}
LIMIT %(limit)s
"""

THREADS_PAGE_AFTER = """
SELECT p.payload::text, p.created_at, p.seq
FROM threads AS c
LEFT JOIN LATERAL (
    SELECT payload, created_at, seq FROM threads
    WHERE user_id = c.user_id AND (created_at, seq) {cmp} (c.created_at, c.seq)
    ORDER BY created_at {dir}, seq {dir}
    LIMIT %(limit)s
) AS p ON true
WHERE c.id = %(after)s AND c.user_id = %(user)s
ORDER BY p.created_at {dir}, p.seq {dir}
"""

ITEMS_PAGE = """
SELECT p.payload::text, p.created_at, p.seq
FROM threads AS t
LEFT JOIN LATERAL (
    SELECT payload, created_at, seq FROM thread_items
    WHERE thread_id = t.id
    ORDER BY created_at {dir}, seq {dir}
    LIMIT %(limit)s
) AS p ON true
WHERE t.id = %(thread)s AND t.user_id = %(user)s
ORDER BY p.created_at {dir}, p.seq {dir}
"""

ITEMS_PAGE_AFTER = """
SELECT p.payload::text, p.created_at, p.seq
FROM threads AS t
JOIN thread_items AS c ON c.thread_id = t.id AND c.id = %(after)s
LEFT JOIN LATERAL (
    SELECT payload, created_at, seq FROM thread_items
    WHERE thread_id = t.id AND (created_at, seq) {cmp} (c.created_at, c.seq)
    ORDER BY created_at {dir}, seq {dir}
    LIMIT %(limit)s
) AS p ON true
WHERE t.id = %(thread)s AND t.user_id = %(user)s
ORDER BY p.created_at {dir}, p.seq {dir}
"""


def _ordered(template: str) -> dict[str, sql.Composed]:
    """The query for each order: `asc` walks forwards from the cursor, `desc` backwards."""
    return {
        order: sql.SQL(template).format(dir=sql.SQL(direction), cmp=sql.SQL(cmp))
        for order, direction, cmp in (("asc", "ASC", ">"), ("desc", "DESC", "<"))
    }


THREADS_QUERIES = {False: _ordered(THREADS_PAGE), True: _ordered(THREADS_PAGE_AFTER)}
ITEMS_QUERIES = {False: _ordered(ITEMS_PAGE), True: _ordered(ITEMS_PAGE_AFTER)}


def _timestamp(value: datetime) -> datetime:
    """An aware timestamp for the ordering column (a naive one is taken as local time,
    as `datetime.now()` gives it). The payload keeps the original value."""
    return value if value.tzinfo is not None else value.astimezone()


MAX_PAGE_SIZE = 1000


def _page_size(limit: int) -> int:
    """A limit PostgreSQL can take and a client can page with: between 1 and MAX_PAGE_SIZE."""
    return min(max(limit, 1), MAX_PAGE_SIZE)


def _order(order: str) -> Order:
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    return "asc" if order == "asc" else "desc"


class PostgresStore(Store[RequestContext]):
    """A complete ChatKit store on PostgreSQL with an async connection pool.

    Build it anywhere (no event loop needed); the pool opens on first use or on
    `await store.open()`, and `await store.close()` releases it. `database_url` may be
    `embedded` (the development server, started off the event loop when the pool opens).

    Not-found rules: reading, updating or paginating another user's (or a missing)
    thread, item or attachment raises `chatkit.store.NotFoundError`; so does an `after`
    cursor that is not an item of that thread (or not one of the user's threads).
    Deleting a missing item or attachment is a no-op; deleting a missing thread raises.
    """

    def __init__(
        self,
        database_url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        embedded_data_dir: Path = EMBEDDED_DATA_DIR,
    ) -> None:
        self.database_url = database_url
        self.embedded_data_dir = embedded_data_dir
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self._pool: Pool | None = None
        self._open_lock = asyncio.Lock()
        self.prepare_attachment: PrepareAttachment | None = None
        """Called (in place) on every attachment read, alone or in a user message, before it
        leaves the store; PostgresAttachmentStore re-signs preview links with it."""
        self.prepare_image: Callable[[GeneratedImageItem, RequestContext], None] | None = None
        """Called (in place) on every generated image item read; images.py re-signs its link."""

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def pool(self) -> Pool:
        """The open connection pool (RuntimeError before `open()`)."""
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open: await store.open() first")
        return self._pool

    async def open(self) -> None:
        """Create and open the pool (idempotent). Connections are made in the background."""
        await self._ensure_open()

    async def close(self) -> None:
        """Close the pool; the store opens a new one if it is used again."""
        async with self._open_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109 (health-check API)
        """True when the database answers `SELECT 1` within `timeout` seconds."""
        try:
            pool = await self._ensure_open()
            async with asyncio.timeout(timeout), pool.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout, TimeoutError, OSError, RuntimeError) as exc:
            logger.debug("database ping failed: %s", type(exc).__name__)
            return False
        return True

    async def _ensure_open(self) -> Pool:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._pool is None:
                conninfo = self.database_url
                if conninfo == EMBEDDED:
                    conninfo = await asyncio.to_thread(
                        resolve_url, conninfo, self.embedded_data_dir
                    )
                pool = create_pool(
                    conninfo, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout
                )
                await pool.open()
                self._pool = pool
            return self._pool

    async def _fetch(self, query: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        rows, _count = await self._execute(query, params, fetch=True)
        return rows

    async def _run(self, query: Any, params: Mapping[str, Any]) -> int:
        _rows, count = await self._execute(query, params, fetch=False)
        return count

    async def execute(self, query: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement of another module (limits.py) on the store's pool; its rows.

        Like every statement here it may run twice (see `_execute`): it must be safe to repeat.
        """
        return await self._fetch(query, params)

    async def _execute(
        self, query: Any, params: Mapping[str, Any], *, fetch: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement; once more on a fresh connection if the first one was dead.

        Pooled connections are not pinged before use (a round trip each); after a database
        restart the first statement on a dead connection fails, `pool.check()` drops the
        other dead ones, and the statement runs again. Every statement here is safe to
        repeat (upserts, keyed deletes, reads).
        """
        pool = await self._ensure_open()
        for attempt in (1, 2):
            async with pool.connection() as conn:
                try:
                    cursor = await conn.execute(query, params)
                    rows = await cursor.fetchall() if fetch else []
                    return rows, cursor.rowcount
                except psycopg.OperationalError:
                    if attempt == 2 or not conn.broken:
                        raise
            logger.info("database connection lost; retrying on a fresh one")
            await pool.check()
        raise AssertionError("unreachable")

    # --- threads ------------------------------------------------------------------------

    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        """The user's thread (NotFoundError when missing or someone else's)."""
        key = ("thread", thread_id)
        payload = context.cache.get(key)
        if payload is None:
            rows = await self._fetch(LOAD_THREAD, {"id": thread_id, "user": context.user.id})
            if not rows:
                raise NotFoundError(f"thread {thread_id} not found")
            payload = context.cache[key] = rows[0][0]
        return THREAD.validate_json(payload)

    async def reload_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        """The thread as stored now, past what this request read before (NotFoundError)."""
        context.cache.pop(("thread", thread_id), None)
        return await self.load_thread(thread_id, context)

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        """Insert or update the thread (NotFoundError when the id is another user's)."""
        context.cache.pop(("thread", thread.id), None)
        params = {
            "id": thread.id,
            "user": context.user.id,
            "created_at": _timestamp(thread.created_at),
            "payload": THREAD.dump_json(thread).decode(),
        }
        if not await self._fetch(SAVE_THREAD, params):
            raise NotFoundError(f"thread {thread.id} not found")

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        """A page of the user's threads by creation time (`after`: exclusive cursor)."""
        limit = _page_size(limit)
        query = THREADS_QUERIES[after is not None][_order(order)]
        params = {"user": context.user.id, "after": after, "limit": max(limit, 0) + 1}
        rows = await self._fetch(query, params)
        if after is not None and not rows:
            raise NotFoundError(f"thread {after} not found")
        threads = [THREAD.validate_json(row[0]) for row in rows if row[0] is not None]
        return _page(threads, limit)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        """Delete the thread, its items and its attachments (NotFoundError when missing)."""
        context.cache.pop(("thread", thread_id), None)
        context.cache.pop(("items", thread_id), None)
        if not await self._fetch(DELETE_THREAD, {"id": thread_id, "user": context.user.id}):
            raise NotFoundError(f"thread {thread_id} not found")

    # --- items --------------------------------------------------------------------------

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: RequestContext,
    ) -> Page[ThreadItem]:
        """A page of the thread's items by creation time (`after`: exclusive cursor).

        NotFoundError when the thread is missing or someone else's, or when `after` is
        not an item of this thread.
        """
        limit = _page_size(limit)
        rows = _newest_cached(context, thread_id, after, limit, order)
        if rows is None:
            query = ITEMS_QUERIES[after is not None][_order(order)]
            params = {
                "thread": thread_id,
                "user": context.user.id,
                "after": after,
                "limit": limit + 1,
            }
            rows = await self._fetch(query, params)
            if after is None and order == "desc":
                context.cache[("items", thread_id)] = (limit, rows)
        if not rows:
            missing = f"item {after}" if after is not None else f"thread {thread_id}"
            raise NotFoundError(f"{missing} not found")
        items = _readable_items(rows, thread_id)
        self._prepare_items(items, context)
        return _page(items, limit)

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: RequestContext
    ) -> None:
        """Add the item to the user's thread (an existing id is updated, not duplicated)."""
        await self._save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        """Insert or update the item in the user's thread (NotFoundError otherwise)."""
        await self._save_item(thread_id, item, context)

    async def _save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        context.cache.pop(("items", thread_id), None)
        if item.id == FAKE_RESPONSES_ID:
            # Chat Completions models give every output the same placeholder id.
            thread = ThreadMetadata(id=thread_id, created_at=item.created_at)
            item.id = self.generate_item_id(ITEM_ID_KIND.get(item.type, "message"), thread, context)
        params = {
            "thread": thread_id,
            "id": item.id,
            "user": context.user.id,
            "created_at": _timestamp(item.created_at),
            "payload": item.model_dump_json(),
        }
        try:
            saved = await self._fetch(SAVE_ITEM, params)
        except psycopg.errors.ForeignKeyViolation:
            saved = []  # the thread was deleted while we wrote
        if not saved:
            raise NotFoundError(f"thread {thread_id} not found")

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        """The item of the user's thread (NotFoundError when missing or someone else's)."""
        params = {"thread": thread_id, "id": item_id, "user": context.user.id}
        rows = await self._fetch(LOAD_ITEM, params)
        if not rows:
            raise NotFoundError(f"item {item_id} not found in thread {thread_id}")
        item = ITEM.validate_json(rows[0][0])
        self._prepare_items([item], context)
        return item

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: RequestContext
    ) -> None:
        """Delete the item if the user's thread has it (a no-op otherwise)."""
        context.cache.pop(("items", thread_id), None)
        await self._run(DELETE_ITEM, {"thread": thread_id, "id": item_id, "user": context.user.id})

    # --- feedback -----------------------------------------------------------------------

    async def save_feedback(
        self, thread_id: str, item_ids: list[str], kind: str, context: RequestContext
    ) -> None:
        """Keep the user's `kind` ("positive"/"negative") on each item: one row per item.

        One statement, all or nothing: NotFoundError (and no row written or changed) when
        any id is not an item of this thread, or the thread is missing or someone else's.
        Repeated ids count once. Nothing in `context.cache` holds feedback.
        """
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"feedback kind must be 'positive' or 'negative', not {kind!r}")
        wanted = list(dict.fromkeys(item_ids))  # distinct, in the order given
        params = {"thread": thread_id, "ids": wanted, "user": context.user.id, "kind": kind}
        try:
            saved = await self._fetch(SAVE_FEEDBACK, params)
        except psycopg.errors.ForeignKeyViolation:
            saved = []  # an item (or its thread) was deleted while we wrote
        if len(saved) != len(wanted):
            raise NotFoundError(f"item not found in thread {thread_id} ({len(wanted)} ids given)")

    # --- attachments --------------------------------------------------------------------

    async def save_attachment(self, attachment: Attachment, context: RequestContext) -> None:
        """Insert or update attachment metadata (NotFoundError when the id is another user's).

        An attachment with a `thread_id` of the user's own thread (the SDK sets it when the
        attachment is sent in a message) is deleted with that thread; one never sent stays
        an orphan until `db prune`.
        """
        params = {
            "id": attachment.id,
            "user": context.user.id,
            "thread": attachment.thread_id,
            "payload": attachment.model_dump_json(),
        }
        try:
            saved = await self._fetch(SAVE_ATTACHMENT, params)
        except psycopg.errors.ForeignKeyViolation:
            saved = []  # the thread was deleted while we wrote
        if not saved:
            raise NotFoundError(f"attachment {attachment.id} not found")

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        """The user's attachment metadata (NotFoundError when missing or someone else's)."""
        rows = await self._fetch(LOAD_ATTACHMENT, {"id": attachment_id, "user": context.user.id})
        if not rows:
            raise NotFoundError(f"attachment {attachment_id} not found")
        attachment = ATTACHMENT.validate_json(rows[0][0])
        if self.prepare_attachment is not None:
            self.prepare_attachment(attachment, context)
        return attachment

    def _prepare_items(self, items: Sequence[ThreadItem], context: RequestContext) -> None:
        """Pass the attachments of user messages through `prepare_attachment`, and generated
        images through `prepare_image`."""
        prepare, prepare_image = self.prepare_attachment, self.prepare_image
        if prepare is None and prepare_image is None:
            return
        for item in items:
            if isinstance(item, UserMessageItem) and prepare is not None:
                for attachment in item.attachments:
                    prepare(attachment, context)
            elif isinstance(item, GeneratedImageItem) and prepare_image is not None:
                prepare_image(item, context)

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        """Delete the user's attachment metadata (a no-op when there is none)."""
        await self._run(DELETE_ATTACHMENT, {"id": attachment_id, "user": context.user.id})

    async def save_attachment_content(
        self, attachment_id: str, content: bytes, context: RequestContext
    ) -> None:
        """Store the uploaded bytes of the user's attachment, once.

        NotFoundError when the attachment is missing or someone else's;
        AttachmentContentExists (and nothing changes) when it already has its bytes.
        """
        params = {"id": attachment_id, "user": context.user.id, "content": content}
        try:
            rows = await self._fetch(SAVE_ATTACHMENT_CONTENT, params)
        except psycopg.errors.ForeignKeyViolation:
            rows = [(False, False)]  # the attachment was deleted while we wrote
        found, saved = rows[0]
        if not found:
            raise NotFoundError(f"attachment {attachment_id} not found")
        if not saved:
            raise AttachmentContentExists(f"attachment {attachment_id} already has its content")

    async def load_attachment_content(self, attachment_id: str, context: RequestContext) -> bytes:
        """The uploaded bytes of the user's attachment (NotFoundError when none)."""
        rows = await self._fetch(
            LOAD_ATTACHMENT_CONTENT, {"id": attachment_id, "user": context.user.id}
        )
        if not rows:
            raise NotFoundError(f"attachment {attachment_id} has no content")
        return bytes(rows[0][0])

    async def load_attachment_contents(
        self, attachment_ids: Sequence[str], budget: int, context: RequestContext
    ) -> dict[str, tuple[int, bytes | None]]:
        """For each of the user's attachments among `attachment_ids` that has content: its size
        and, while the sizes in list order add up to at most `budget`, its bytes (else None).

        One statement. Missing, foreign and never-uploaded attachments are left out.
        """
        if not attachment_ids:
            return {}
        params = {"ids": list(attachment_ids), "budget": budget, "user": context.user.id}
        rows = await self._fetch(LOAD_ATTACHMENT_CONTENTS, params)
        return {
            row[0]: (int(row[1]), bytes(row[2]) if row[2] is not None else None) for row in rows
        }


def _readable_items(rows: Sequence[tuple[Any, ...]], thread_id: str) -> list[ThreadItem]:
    """The rows' items; one this SDK version cannot read (an item type it does not know) is
    left out with a warning, so it never breaks the thread."""
    items = []
    for row in rows:
        if row[0] is None:
            continue
        try:
            items.append(ITEM.validate_json(row[0]))
        except ValidationError as exc:
            logger.warning(
                "skipping an unreadable item of thread %s: %s", thread_id, exc.errors()[0]["type"]
            )
    return items


def _newest_cached(
    context: RequestContext, thread_id: str, after: str | None, limit: int, order: str
) -> list[tuple[Any, ...]] | None:
    """The rows of the thread's newest page if this request already read enough of them.

    The cache holds the rows of an earlier `desc` page without cursor (the newest `n` items
    plus one more when there are more): any smaller newest page is a prefix of it.
    """
    cached = context.cache.get(("items", thread_id))
    if cached is None or after is not None or order != "desc":
        return None
    fetched_limit, rows = cached
    wanted = max(limit, 0) + 1
    if wanted <= len(rows) or len(rows) <= fetched_limit:
        rows = list(rows[:wanted])
        return rows
    return None


def _page(rows: Sequence[T], limit: int) -> Page[T]:
    """The SDK's page: `after` is the last id only when more rows remain."""
    limit = max(limit, 0)
    data = list(rows[:limit])
    has_more = len(rows) > limit
    after = getattr(data[-1], "id", None) if has_more and data else None
    return Page[T](data=data, has_more=has_more, after=after)
