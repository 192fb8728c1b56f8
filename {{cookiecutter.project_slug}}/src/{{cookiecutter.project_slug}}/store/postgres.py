"""PostgresStore: the ChatKit store (threads, items, attachments) on PostgreSQL, scoped to
`context.user.id` (another user's rows are "not found"). Payloads are the SDK's models as JSONB."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import (
    Attachment,
    GeneratedImageItem,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
)
from psycopg_pool import PoolTimeout
from pydantic import TypeAdapter

from ..compat.chatkit_server import FAKE_RESPONSES_ID
from ..context import RequestContext
from ..errors import AppError
from ..settings import EMBEDDED
from . import queries as q
from .db import Pool, connect, create_pool, redact_secrets, redact_url
from .health import DatabaseHealth, is_outage
from .pages import checked_order, newest_cached, page_size, readable_items, timestamp, to_page

logger = logging.getLogger(__name__)
# Loading a stored widget is not "direct usage" of the widget classes the SDK warns about.
warnings.filterwarnings(
    "ignore", message="Direct usage of named widget classes", category=DeprecationWarning
)

THREAD = TypeAdapter(ThreadMetadata)
ITEM: TypeAdapter[ThreadItem] = TypeAdapter(ThreadItem)
ATTACHMENT: TypeAdapter[Attachment] = TypeAdapter(Attachment)
FEEDBACK_KINDS = frozenset({"positive", "negative"})
PROBE_SECONDS = 5.0
ITEM_ID_KIND: Mapping[str, StoreItemType] = {
    "client_tool_call": "tool_call",
    "task": "task",
    "workflow": "workflow",
    "sdk_hidden_context": "sdk_hidden_context",
}

PrepareAttachment = Callable[[Attachment, RequestContext], None]
PrepareImage = Callable[[GeneratedImageItem, RequestContext], None]
Rows = list[tuple[Any, ...]]


class AttachmentContentExists(AppError):
    """The attachment already has its uploaded bytes (they are written once)."""

    status = 409
    code = "already_uploaded"

    def __init__(self) -> None:
        super().__init__("this upload link was already used")


class PostgresStore(Store[RequestContext]):
    """A complete ChatKit store on an async connection pool, opened on first use (or
    `await store.open()`); `database_url` may be `embedded`. Missing or foreign rows raise
    NotFoundError, except that deleting a missing item or attachment does nothing."""

    def __init__(
        self,
        database_url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 5.0,
        resolve_url: Callable[[str], str] | None = None,
        prepare_attachment: PrepareAttachment | None = None,
        prepare_image: PrepareImage | None = None,
    ) -> None:
        self.database_url = database_url
        self.resolve_url = resolve_url  # `embedded` -> a real URL (dev/embedded.py's, from main)
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self._pool: Pool | None = None
        self._conninfo = database_url
        self._open_lock = asyncio.Lock()
        where = (
            "embedded PostgreSQL (development)"
            if database_url == EMBEDDED
            else redact_url(database_url)
        )
        self.health = DatabaseHealth(
            where, self._probe, self._replace_pool, lambda text: redact_secrets(text, database_url)
        )
        # Called on every attachment and generated image before it leaves the store (fresh links).
        self.prepare_attachment = prepare_attachment
        self.prepare_image = prepare_image

    @property
    def pool(self) -> Pool:
        """The open connection pool (RuntimeError before `open()`)."""
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open: await store.open() first")
        return self._pool

    async def open(self) -> None:
        """Open the pool (idempotent); one probe says at once whether the database answers."""
        await self._ensure_open()
        self.health.suspect()

    async def close(self) -> None:
        """Close the pool; the store opens a new one if it is used again."""
        await self.health.close()
        async with self._open_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def ping(self, timeout: float = 2.0) -> bool:  # noqa: ASYNC109 (health-check API)
        """Whether the database answers `SELECT 1` within `timeout` seconds (not while down)."""
        if self.health.down:
            return False
        try:
            pool = await self._ensure_open()
            async with asyncio.timeout(timeout), pool.connection(timeout=timeout) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout, TimeoutError, OSError, RuntimeError) as exc:
            logger.debug("database ping failed: %s", type(exc).__name__)
            self.health.suspect(exc)
            return False
        return True

    async def _probe(self) -> None:
        """One fresh connection runs `SELECT 1` (health.py's probe), within PROBE_SECONDS."""
        await self._ensure_open()
        async with asyncio.timeout(PROBE_SECONDS), await connect(self._conninfo) as conn:
            await conn.execute("SELECT 1")

    async def _replace_pool(self) -> None:
        """After an outage: a fresh pool (the old one may back off reconnecting for minutes)."""
        async with self._open_lock:
            old = self._pool
            if old is None:
                return
            pool = create_pool(
                self._conninfo, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout
            )
            await pool.open()
            self._pool = pool
        await old.close()

    async def _ensure_open(self) -> Pool:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._pool is None:
                conninfo = self.database_url
                if conninfo == EMBEDDED:
                    if self.resolve_url is None:
                        raise RuntimeError("DATABASE_URL=embedded needs resolve_url (main.py)")
                    conninfo = await asyncio.to_thread(self.resolve_url, conninfo)
                pool = create_pool(
                    conninfo, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout
                )
                await pool.open()
                self._pool, self._conninfo = pool, conninfo
            return self._pool

    async def execute(self, query: Any, params: Mapping[str, Any]) -> Rows:
        """Run one statement on the store's pool; its rows. It must be safe to repeat."""
        rows, _count = await self._execute(query, params, fetch=True)
        return rows

    async def _write(self, query: Any, params: Mapping[str, Any]) -> Rows:
        """The rows of a write; none when a row it refers to was deleted meanwhile."""
        try:
            return await self.execute(query, params)
        except psycopg.errors.ForeignKeyViolation:
            return []

    async def _execute(
        self, query: Any, params: Mapping[str, Any], *, fetch: bool
    ) -> tuple[Rows, int]:
        """Run one statement; once more on a fresh connection if the first one was dead
        (connections are not pinged before use: that would double the round trips)."""
        self.health.admit()
        pool = await self._ensure_open()
        try:
            for attempt in (1, 2):
                async with pool.connection() as conn:
                    try:
                        cursor = await conn.execute(query, params)
                        rows = await cursor.fetchall() if fetch else []
                        return rows, cursor.rowcount
                    except psycopg.OperationalError:
                        if attempt == 2 or not conn.broken:
                            raise
                logger.debug("database connection lost; retrying on a fresh one")
                await pool.check()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if is_outage(exc):
                self.health.suspect(exc)
            raise
        raise AssertionError("unreachable")

    async def load_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        key = ("thread", thread_id)
        payload = context.cache.get(key)
        if payload is None:
            rows = await self.execute(q.LOAD_THREAD, {"id": thread_id, "user": context.user.id})
            if not rows:
                raise NotFoundError(f"thread {thread_id} not found")
            payload = context.cache[key] = rows[0][0]
        return THREAD.validate_json(payload)

    async def reload_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata:
        """The thread as stored now, past what this request read before (NotFoundError)."""
        context.cache.pop(("thread", thread_id), None)
        return await self.load_thread(thread_id, context)

    async def save_thread(self, thread: ThreadMetadata, context: RequestContext) -> None:
        context.cache.pop(("thread", thread.id), None)
        params = {
            "id": thread.id,
            "user": context.user.id,
            "created_at": timestamp(thread.created_at),
            "payload": THREAD.dump_json(thread).decode(),
        }
        if not await self.execute(q.SAVE_THREAD, params):
            raise NotFoundError(f"thread {thread.id} not found")

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: RequestContext
    ) -> Page[ThreadMetadata]:
        limit = page_size(limit)
        query = q.THREADS_QUERIES[after is not None][checked_order(order)]
        params = {"user": context.user.id, "after": after, "limit": limit + 1}
        rows = await self.execute(query, params)
        if after is not None and not rows:
            raise NotFoundError(f"thread {after} not found")
        return to_page([THREAD.validate_json(row[0]) for row in rows if row[0] is not None], limit)

    async def delete_thread(self, thread_id: str, context: RequestContext) -> None:
        """Delete the thread with its items, attachments and feedback."""
        context.cache.pop(("thread", thread_id), None)
        context.cache.pop(("items", thread_id), None)
        if not await self.execute(q.DELETE_THREAD, {"id": thread_id, "user": context.user.id}):
            raise NotFoundError(f"thread {thread_id} not found")

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: RequestContext,
    ) -> Page[ThreadItem]:
        limit = page_size(limit)
        rows = newest_cached(context, thread_id, after, limit, order)
        if rows is None:
            query = q.ITEMS_QUERIES[after is not None][checked_order(order)]
            params = {"thread": thread_id, "user": context.user.id, "after": after}
            rows = await self.execute(query, {**params, "limit": limit + 1})
            if after is None and order == "desc":
                context.cache[("items", thread_id)] = (limit, rows)
        if not rows:
            missing = f"item {after}" if after is not None else f"thread {thread_id}"
            raise NotFoundError(f"{missing} not found")
        items = readable_items(ITEM, rows, thread_id)
        self._prepare_items(items, context)
        return to_page(items, limit)

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: RequestContext
    ) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: RequestContext) -> None:
        context.cache.pop(("items", thread_id), None)
        if item.id == FAKE_RESPONSES_ID:
            # Chat Completions models give every output the same placeholder id.
            thread = ThreadMetadata(id=thread_id, created_at=item.created_at)
            item.id = self.generate_item_id(ITEM_ID_KIND.get(item.type, "message"), thread, context)
        params = {
            "thread": thread_id,
            "id": item.id,
            "user": context.user.id,
            "created_at": timestamp(item.created_at),
            "payload": item.model_dump_json(),
        }
        if not await self._write(q.SAVE_ITEM, params):
            raise NotFoundError(f"thread {thread_id} not found")

    async def load_item(self, thread_id: str, item_id: str, context: RequestContext) -> ThreadItem:
        params = {"thread": thread_id, "id": item_id, "user": context.user.id}
        rows = await self.execute(q.LOAD_ITEM, params)
        if not rows:
            raise NotFoundError(f"item {item_id} not found in thread {thread_id}")
        item = ITEM.validate_json(rows[0][0])
        self._prepare_items([item], context)
        return item

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: RequestContext
    ) -> None:
        context.cache.pop(("items", thread_id), None)
        params = {"thread": thread_id, "id": item_id, "user": context.user.id}
        await self._execute(q.DELETE_ITEM, params, fetch=False)

    async def save_feedback(
        self, thread_id: str, item_ids: list[str], kind: str, context: RequestContext
    ) -> None:
        """Keep the user's `kind` on each item (latest wins); all or nothing (NotFoundError
        when any id is not an item of the user's thread). Repeated ids count once."""
        if kind not in FEEDBACK_KINDS:
            raise ValueError(f"feedback kind must be 'positive' or 'negative', not {kind!r}")
        wanted = list(dict.fromkeys(item_ids))
        params = {"thread": thread_id, "ids": wanted, "user": context.user.id, "kind": kind}
        if len(await self._write(q.SAVE_FEEDBACK, params)) != len(wanted):
            raise NotFoundError(f"item not found in thread {thread_id} ({len(wanted)} ids given)")

    async def save_attachment(self, attachment: Attachment, context: RequestContext) -> None:
        """Insert or update the metadata; one sent in the user's thread is deleted with it."""
        params = {
            "id": attachment.id,
            "user": context.user.id,
            "thread": attachment.thread_id,
            "payload": attachment.model_dump_json(),
        }
        if not await self._write(q.SAVE_ATTACHMENT, params):
            raise NotFoundError(f"attachment {attachment.id} not found")

    async def load_attachment(self, attachment_id: str, context: RequestContext) -> Attachment:
        params = {"id": attachment_id, "user": context.user.id}
        rows = await self.execute(q.LOAD_ATTACHMENT, params)
        if not rows:
            raise NotFoundError(f"attachment {attachment_id} not found")
        attachment = ATTACHMENT.validate_json(rows[0][0])
        if self.prepare_attachment is not None:
            self.prepare_attachment(attachment, context)
        return attachment

    def _prepare_items(self, items: Sequence[ThreadItem], context: RequestContext) -> None:
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
        params = {"id": attachment_id, "user": context.user.id}
        await self._execute(q.DELETE_ATTACHMENT, params, fetch=False)

    async def save_attachment_content(
        self, attachment_id: str, content: bytes, context: RequestContext
    ) -> None:
        """Store the uploaded bytes, once (AttachmentContentExists the second time)."""
        params = {"id": attachment_id, "user": context.user.id, "content": content}
        rows = await self._write(q.SAVE_ATTACHMENT_CONTENT, params)
        found, saved = rows[0] if rows else (False, False)
        if not found:
            raise NotFoundError(f"attachment {attachment_id} not found")
        if not saved:
            raise AttachmentContentExists

    async def load_attachment_content(self, attachment_id: str, context: RequestContext) -> bytes:
        params = {"id": attachment_id, "user": context.user.id}
        rows = await self.execute(q.LOAD_ATTACHMENT_CONTENT, params)
        if not rows:
            raise NotFoundError(f"attachment {attachment_id} has no content")
        return bytes(rows[0][0])

    async def load_attachment_contents(
        self, ids: Sequence[str], budget: int, context: RequestContext, overhead: int = 0
    ) -> dict[str, tuple[int, bytes | None]]:
        """Size of each of the user's uploaded attachments among the ids, and the bytes while
        the sizes (in list order, plus `overhead` each) add up to at most `budget`."""
        if not ids:
            return {}
        params = {
            "ids": list(ids),
            "budget": budget,
            "overhead": overhead,
            "user": context.user.id,
        }
        rows = await self.execute(q.LOAD_ATTACHMENT_CONTENTS, params)
        return {
            row[0]: (int(row[1]), bytes(row[2]) if row[2] is not None else None) for row in rows
        }
