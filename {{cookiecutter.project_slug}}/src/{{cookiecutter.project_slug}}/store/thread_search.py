"""Finding a user's threads by title (the `thread` entity type's search, agent/entity_types.py)."""

from __future__ import annotations

from .postgres import PostgresStore

SEARCH_THREADS = """
SELECT id, payload->>'title' FROM threads
WHERE user_id = %(user)s AND payload->>'title' ILIKE %(pattern)s ESCAPE '\\'
ORDER BY created_at DESC, seq DESC
LIMIT %(limit)s
"""


def like_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_thread_titles(
    store: PostgresStore, user_id: str, text: str, limit: int
) -> list[tuple[str, str]]:
    """(id, title) of the user's threads whose title contains `text` (any case), newest first."""
    params = {"user": user_id, "pattern": like_pattern(text), "limit": limit}
    return [(str(row[0]), str(row[1])) for row in await store.execute(SEARCH_THREADS, params)]
