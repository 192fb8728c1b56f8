"""All of one user's rows, for `users export` (one JSON document, streamed) and `users delete`
(one transaction). Table-driven: a table with `user_id` holds the user's rows; any other is
listed in CASCADED or EXEMPT, or both commands refuse."""

from __future__ import annotations

import base64
import graphlib
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import IO, Any

from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from .db import connect

Conn = AsyncConnection[TupleRow]

CASCADED: dict[str, str] = {
    "thread_items": "SELECT count(*) FROM thread_items AS i JOIN threads AS t"
    " ON t.id = i.thread_id WHERE t.user_id = %(user)s",
    "attachment_contents": "SELECT count(*) FROM attachment_contents AS c JOIN attachments AS a"
    " ON a.id = c.attachment_id WHERE a.user_id = %(user)s",
}
"""Tables without `user_id` whose rows go with a parent's ON DELETE CASCADE: how to count one
user's rows (the export nests them: items in threads, contents in attachments)."""
EXEMPT: dict[str, str] = {"schema_migrations": "the schema version; no user data"}
"""Tables that hold no user's data, and why."""
NESTED = frozenset({"threads", "attachments"})
"""User tables the export writes in a shape of their own (with their CASCADED children)."""
FETCH_SIZE = 200
"""Rows fetched per round trip from the export's server-side cursors."""

TABLES = """
SELECT t.table_name, bool_or(c.column_name = 'user_id')
FROM information_schema.tables AS t
JOIN information_schema.columns AS c USING (table_schema, table_name)
WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
GROUP BY 1 ORDER BY 1
"""

REFERENCES = """
SELECT child.relname, parent.relname
FROM pg_constraint AS f
JOIN pg_class AS child ON child.oid = f.conrelid
JOIN pg_class AS parent ON parent.oid = f.confrelid
WHERE f.contype = 'f' AND child.relnamespace = current_schema()::regnamespace
"""

COLUMNS = """
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = %(table)s ORDER BY ordinal_position
"""


class UncoveredTables(Exception):
    """Tables without `user_id` and without a rule here: the user's rows there are unknown."""


async def user_tables(conn: Conn) -> list[str]:
    """The tables with a `user_id` column, those that reference others first (so deleting in
    this order never trips a foreign key). UncoveredTables when a table has no rule."""
    cursor = await conn.execute(TABLES)
    found = {str(name): bool(has_user) for name, has_user in await cursor.fetchall()}
    uncovered = sorted(t for t, has in found.items() if not has and t not in {*CASCADED, *EXEMPT})
    if uncovered:
        raise UncoveredTables(
            f"no rule for the user's rows in {', '.join(uncovered)}: add a user_id column, or "
            f"list the table in CASCADED or EXEMPT in {__name__}"
        )
    order: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    tables = [t for t, has in found.items() if has]
    for table in tables:
        order.add(table)
    for child, parent in await (await conn.execute(REFERENCES)).fetchall():
        if child != parent and child in found and parent in found:
            order.add(parent, child)  # the referencing table goes first
    return [t for t in order.static_order() if t in tables]


async def count_rows(conn: Conn, user_id: str, tables: list[str]) -> dict[str, int]:
    """How many rows of the user each table holds (CASCADED ones through their parent)."""
    counts: dict[str, int] = {}
    count = sql.SQL("SELECT count(*) FROM {} WHERE user_id = %(user)s")
    for table in tables:
        counts[table] = await _one_int(conn, count.format(sql.Identifier(table)), user_id)
    for table, query in CASCADED.items():
        counts[table] = await _one_int(conn, query, user_id)
    return counts


async def _one_int(conn: Conn, query: Any, user_id: str) -> int:
    row = await (await conn.execute(query, {"user": user_id})).fetchone()
    return int(row[0]) if row else 0


async def delete_user(conninfo: str, user_id: str) -> dict[str, int]:
    """Delete every row of the user, in one transaction; how many per table."""
    async with await connect(conninfo) as conn, conn.transaction():
        tables = await user_tables(conn)
        # Lock the parents first: nothing can be added under them while we count and delete.
        lock = sql.SQL("SELECT 1 FROM {} WHERE user_id = %(user)s FOR UPDATE")
        for parent in ("threads", "attachments"):
            await conn.execute(lock.format(sql.Identifier(parent)), {"user": user_id})
        removed = {table: await _one_int(conn, query, user_id) for table, query in CASCADED.items()}
        delete = sql.SQL("DELETE FROM {} WHERE user_id = %(user)s")
        for table in tables:
            cursor = await conn.execute(delete.format(sql.Identifier(table)), {"user": user_id})
            removed[table] = max(cursor.rowcount, 0)
    return {table: removed[table] for table in [*tables, *CASCADED]}


THREADS = "SELECT id, payload::text FROM threads WHERE user_id = %(user)s ORDER BY created_at, seq"
ITEMS = """
SELECT i.thread_id, i.payload::text
FROM threads AS t JOIN thread_items AS i ON i.thread_id = t.id
WHERE t.user_id = %(user)s
ORDER BY t.created_at, t.seq, i.created_at, i.seq
"""
ATTACHMENTS = """
SELECT a.payload::text, a.thread_id, a.created_at, c.content
FROM attachments AS a LEFT JOIN attachment_contents AS c ON c.attachment_id = a.id
WHERE a.user_id = %(user)s ORDER BY a.created_at, a.id
"""


async def rows_of(
    conn: Conn, name: str, query: Any, user_id: str, fetch_size: int
) -> AsyncGenerator[TupleRow, None]:
    """The rows of `query` through a server-side cursor: `fetch_size` rows in memory at most."""
    async with conn.cursor(name) as cursor:
        cursor.itersize = fetch_size
        await cursor.execute(query, {"user": user_id})
        async for row in cursor:
            yield row


async def generic_query(conn: Conn, table: str) -> sql.Composed:
    """The table's rows of one user as JSON text (bytea columns as base64), oldest first."""
    columns = await (await conn.execute(COLUMNS, {"table": table})).fetchall()
    selected = [
        sql.SQL("translate(encode({0}, 'base64'), E'\\n', '') AS {0}").format(sql.Identifier(c))
        if kind == "bytea"
        else sql.Identifier(c)
        for c, kind in columns
    ]
    dated = any(c == "created_at" for c, _ in columns)
    query = "SELECT row_to_json(r)::text FROM (SELECT {} FROM {} WHERE user_id = %(user)s) AS r"
    return sql.SQL(query + (" ORDER BY r.created_at" if dated else "")).format(
        sql.SQL(", ").join(selected), sql.Identifier(table)
    )


class Writer:
    """Writes a JSON document piece by piece; `item` puts the commas between array elements."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.counts: dict[str, int] = {}

    def put(self, text: str) -> None:
        self.out.write(text.encode())

    def item(self, table: str, text: str) -> None:
        self.put(("," if self.counts.get(table) else "") + "\n" + text)
        self.counts[table] = self.counts.get(table, 0) + 1


async def export_user(
    conninfo: str, user_id: str, out: IO[bytes], *, fetch_size: int = FETCH_SIZE
) -> dict[str, int]:
    """Write the user's data to `out` as one JSON document, a row at a time, from one
    REPEATABLE READ snapshot (threads and items from two cursors, merged); counts per table."""
    w = Writer(out)
    async with await connect(conninfo) as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        tables = await user_tables(conn)
        w.put('{"user_id": ' + json.dumps(user_id) + ", ")
        w.put(f'"exported_at": {json.dumps(datetime.now(UTC).isoformat())},\n"threads": [')
        w.counts = {"threads": 0, "thread_items": 0}
        async with aclosing(rows_of(conn, "export_items", ITEMS, user_id, fetch_size)) as items:
            pending = await anext(items, None)
            async for thread_id, thread in rows_of(conn, "export_t", THREADS, user_id, fetch_size):
                w.item("threads", '{"thread": ' + thread + ', "items": [')
                first = w.counts["thread_items"]
                while pending is not None and pending[0] == thread_id:
                    w.put(("," if w.counts["thread_items"] > first else "") + "\n" + pending[1])
                    w.counts["thread_items"] += 1
                    pending = await anext(items, None)
                w.put("]}")
        w.put('],\n"attachments": [')
        w.counts |= {"attachments": 0, "attachment_contents": 0}
        async for payload, thread_id, created_at, content in rows_of(
            conn, "export_attachments", ATTACHMENTS, user_id, 1
        ):
            size = len(content) if content is not None else None
            head = json.dumps({"thread_id": thread_id, "created_at": created_at.isoformat()})
            encoded = json.dumps(base64.b64encode(content).decode() if size is not None else None)
            w.item("attachments", f'{head[:-1]}, "size": {json.dumps(size)}, "metadata": {payload}')
            w.put(', "content_base64": ' + encoded + "}")
            w.counts["attachment_contents"] += size is not None
        w.put("]")
        for table in (t for t in sorted(tables) if t not in NESTED):
            w.put(f",\n{json.dumps(table)}: [")
            w.counts[table] = 0
            query = await generic_query(conn, table)
            async for (row,) in rows_of(conn, f"export_{table}", query, user_id, fetch_size):
                w.item(table, row)
            w.put("]")
        w.put("}\n")
    return w.counts
