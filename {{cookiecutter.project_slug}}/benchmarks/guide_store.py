"""Baseline for bench_store.py: a Postgres store written the way the ChatKit guide's example is.

A new synchronous psycopg connection for every call (no pool), made inside the async
methods, payloads wrapped in a pydantic model and stored as JSONB, plain INSERTs, the
`after` cursor looked up in a separate query. It gets the same indexes as PostgresStore,
so the comparison measures connection handling and the async design, not a missing index.
Only for the benchmark: it is not scoped or complete enough for production.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from chatkit.store import NotFoundError, Store
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from psycopg.types.json import Jsonb
from pydantic import BaseModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS guide_threads (
    id text PRIMARY KEY, user_id text NOT NULL, created_at timestamptz NOT NULL,
    data jsonb NOT NULL);
CREATE INDEX IF NOT EXISTS guide_threads_user_idx ON guide_threads (user_id, created_at);
CREATE TABLE IF NOT EXISTS guide_items (
    id text PRIMARY KEY, thread_id text NOT NULL, user_id text NOT NULL,
    created_at timestamptz NOT NULL, data jsonb NOT NULL);
CREATE INDEX IF NOT EXISTS guide_items_thread_idx ON guide_items (thread_id, created_at);
CREATE TABLE IF NOT EXISTS guide_attachments (
    id text PRIMARY KEY, user_id text NOT NULL, data jsonb NOT NULL);
"""


class ThreadData(BaseModel):
    thread: ThreadMetadata


class ItemData(BaseModel):
    item: ThreadItem


class AttachmentData(BaseModel):
    attachment: Attachment


class GuideStore(Store[Any]):
    """One new blocking connection per call, as in the guide."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        with self._connection() as conn:
            conn.execute(SCHEMA.encode())

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with psycopg.connect(self._conninfo) as conn:
            yield conn

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT data FROM guide_threads WHERE id = %s AND user_id = %s",
                (thread_id, context.user.id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return ThreadData.model_validate(row[0]).thread

    async def save_thread(self, thread: ThreadMetadata, context: Any) -> None:
        data = ThreadData(thread=thread).model_dump(mode="json")
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO guide_threads (id, user_id, created_at, data) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
                (thread.id, context.user.id, thread.created_at, Jsonb(data)),
            )

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Any
    ) -> Page[ThreadMetadata]:
        direction = "DESC" if order == "desc" else "ASC"
        with self._connection() as conn:
            query = "SELECT data FROM guide_threads WHERE user_id = %s"
            params: list[Any] = [context.user.id]
            if after:
                row = conn.execute(
                    "SELECT created_at FROM guide_threads WHERE id = %s", (after,)
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"Thread {after} not found")
                query += " AND created_at < %s" if order == "desc" else " AND created_at > %s"
                params.append(row[0])
            query += f" ORDER BY created_at {direction} LIMIT %s"
            params.append(limit + 1)
            rows = conn.execute(query.encode(), params).fetchall()
        threads = [ThreadData.model_validate(row[0]).thread for row in rows]
        has_more = len(threads) > limit
        threads = threads[:limit]
        return Page(data=threads, has_more=has_more, after=threads[-1].id if has_more else None)

    async def delete_thread(self, thread_id: str, context: Any) -> None:
        with self._connection() as conn:
            conn.execute(
                "DELETE FROM guide_threads WHERE id = %s AND user_id = %s",
                (thread_id, context.user.id),
            )
            conn.execute("DELETE FROM guide_items WHERE thread_id = %s", (thread_id,))

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Any
    ) -> Page[ThreadItem]:
        direction = "DESC" if order == "desc" else "ASC"
        with self._connection() as conn:
            query = "SELECT data FROM guide_items WHERE thread_id = %s AND user_id = %s"
            params: list[Any] = [thread_id, context.user.id]
            if after:
                row = conn.execute(
                    "SELECT created_at FROM guide_items WHERE id = %s", (after,)
                ).fetchone()
                if row is None:
                    raise NotFoundError(f"Item {after} not found")
                query += " AND created_at < %s" if order == "desc" else " AND created_at > %s"
                params.append(row[0])
            query += f" ORDER BY created_at {direction} LIMIT %s"
            params.append(limit + 1)
            rows = conn.execute(query.encode(), params).fetchall()
        items = [ItemData.model_validate(row[0]).item for row in rows]
        has_more = len(items) > limit
        items = items[:limit]
        return Page(data=items, has_more=has_more, after=items[-1].id if has_more else None)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        data = ItemData(item=item).model_dump(mode="json")
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO guide_items (id, thread_id, user_id, created_at, data)"
                " VALUES (%s, %s, %s, %s, %s)",
                (item.id, thread_id, context.user.id, item.created_at, Jsonb(data)),
            )

    async def save_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
        data = ItemData(item=item).model_dump(mode="json")
        with self._connection() as conn:
            conn.execute(
                "UPDATE guide_items SET data = %s"
                " WHERE id = %s AND thread_id = %s AND user_id = %s",
                (Jsonb(data), item.id, thread_id, context.user.id),
            )

    async def load_item(self, thread_id: str, item_id: str, context: Any) -> ThreadItem:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT data FROM guide_items WHERE id = %s AND thread_id = %s AND user_id = %s",
                (item_id, thread_id, context.user.id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Item {item_id} not found")
        return ItemData.model_validate(row[0]).item

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Any) -> None:
        with self._connection() as conn:
            conn.execute(
                "DELETE FROM guide_items WHERE id = %s AND thread_id = %s AND user_id = %s",
                (item_id, thread_id, context.user.id),
            )

    async def save_attachment(self, attachment: Attachment, context: Any) -> None:
        data = AttachmentData(attachment=attachment).model_dump(mode="json")
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO guide_attachments (id, user_id, data) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
                (attachment.id, context.user.id, Jsonb(data)),
            )

    async def load_attachment(self, attachment_id: str, context: Any) -> Attachment:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT data FROM guide_attachments WHERE id = %s AND user_id = %s",
                (attachment_id, context.user.id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"Attachment {attachment_id} not found")
        return AttachmentData.model_validate(row[0]).attachment

    async def delete_attachment(self, attachment_id: str, context: Any) -> None:
        with self._connection() as conn:
            conn.execute(
                "DELETE FROM guide_attachments WHERE id = %s AND user_id = %s",
                (attachment_id, context.user.id),
            )
