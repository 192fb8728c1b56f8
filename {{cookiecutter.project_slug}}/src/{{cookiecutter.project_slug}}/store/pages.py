"""Keyset pages: page sizes, the order, the SDK's `Page`, and a request's cached newest page."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from chatkit.types import Page, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter, ValidationError

from ..context import RequestContext

logger = logging.getLogger(__name__)
Order = Literal["asc", "desc"]
T = TypeVar("T", ThreadMetadata, ThreadItem)
MAX_PAGE_SIZE = 1000


def timestamp(value: datetime) -> datetime:
    """An aware timestamp for the ordering column (naive means local time, as from
    `datetime.now()`); the payload keeps the original value."""
    return value if value.tzinfo is not None else value.astimezone()


def page_size(limit: int) -> int:
    """A limit PostgreSQL can take and a client can page with: between 1 and MAX_PAGE_SIZE."""
    return min(max(limit, 1), MAX_PAGE_SIZE)


def checked_order(order: str) -> Order:
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    return "asc" if order == "asc" else "desc"


def newest_cached(
    context: RequestContext, thread_id: str, after: str | None, limit: int, order: str
) -> list[tuple[Any, ...]] | None:
    """The thread's newest page from the rows of a larger one this request already read
    (a `desc` page without cursor: its newest `n` items plus one when there are more)."""
    cached = context.cache.get(("items", thread_id))
    if cached is None or after is not None or order != "desc":
        return None
    fetched_limit, rows = cached
    wanted = max(limit, 0) + 1
    if wanted <= len(rows) or len(rows) <= fetched_limit:
        return list(rows[:wanted])
    return None


def to_page(rows: Sequence[T], limit: int) -> Page[T]:
    """The SDK's page: `after` is the last id only when more rows remain."""
    limit = max(limit, 0)
    data = list(rows[:limit])
    has_more = len(rows) > limit
    after = getattr(data[-1], "id", None) if has_more and data else None
    return Page[T](data=data, has_more=has_more, after=after)


def readable_items(
    adapter: TypeAdapter[ThreadItem], rows: Sequence[tuple[Any, ...]], thread_id: str
) -> list[ThreadItem]:
    """The rows' items; one this SDK version cannot read (a type it does not know) is left out
    with a warning, so it never breaks the thread."""
    items = []
    for row in rows:
        if row[0] is None:
            continue
        try:
            items.append(adapter.validate_json(row[0]))
        except ValidationError as exc:
            logger.warning(
                "skipping an unreadable item of thread %s: %s", thread_id, exc.errors()[0]["type"]
            )
    return items
