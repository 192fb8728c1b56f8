"""@-mentions: the entity types a user can tag (ENTITY_TYPES), each searched (`GET /entities`),
resolved to model input and previewed as the user; a tag's client-sent `data` only picks the
type. Built in: `thread`, the user's own earlier conversations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chatkit.store import NotFoundError
from chatkit.types import AssistantMessageItem, UserMessageItem, UserMessageTextContent

from ..context import RequestContext
from ..store.postgres import PostgresStore
from ..store.thread_search import search_thread_titles

MAX_RESULTS = 20
THREAD_ITEMS = 10
THREAD_CHARS = 4000
"""A tagged thread gives the model at most its newest THREAD_ITEMS items, THREAD_CHARS
characters of their text."""


@dataclass(frozen=True, slots=True)
class Entity:
    """A ChatKit.js `Entity`: what the composer shows and a tag sends back."""

    id: str
    title: str
    type: str
    group: str | None = None
    icon: str | None = None
    interactive: bool = False
    """Whether ChatKit.js may ask for a preview (its type has one)."""

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.id, "title": self.title, "data": {"type": self.type}}
        if self.group:
            entry["group"] = self.group
        if self.icon:
            entry["icon"] = self.icon
        if self.interactive:
            entry["interactive"] = True
        return entry


@dataclass(frozen=True, slots=True)
class EntityScope:
    """Who is looking (every lookup is scoped to `context.user`) and where."""

    store: PostgresStore
    context: RequestContext


Search = Callable[[EntityScope, str, int], Awaitable[list[Entity]]]
Resolve = Callable[[EntityScope, str], Awaitable[str | None]]
Preview = Callable[[EntityScope, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class EntityType:
    """One kind of entity: `search(scope, text, limit)` for the composer, `resolve(scope, id)`
    for the model and `preview(scope, id)` for a hover card (None: not found for this user)."""

    search: Search
    resolve: Resolve
    preview: Preview | None = None


def fenced(tag: str, body: str) -> str:
    """`<TAG>body</TAG>`, with any `</TAG` inside broken so the block cannot end early."""
    closing = f"</{tag}"
    return f"<{tag}>\n{body.replace(closing, f'< /{tag}')}\n{closing}>"


async def search_threads(scope: EntityScope, text: str, limit: int) -> list[Entity]:
    """The user's threads whose title contains `text` (any case), newest first."""
    rows = await search_thread_titles(scope.store, scope.context.user.id, text, limit)
    return [
        Entity(row[0], row[1], "thread", group="Conversations", icon="notebook", interactive=True)
        for row in rows
    ]


def message_line(item: object) -> str | None:
    """`user: ...` or `assistant: ...` for a message; None for any other item."""
    if isinstance(item, UserMessageItem):
        parts = (
            p.text if isinstance(p, UserMessageTextContent) else f"@{p.text}" for p in item.content
        )
        return "user: " + "".join(parts)
    if isinstance(item, AssistantMessageItem):
        return "assistant: " + "".join(part.text for part in item.content)
    return None


async def resolve_thread(scope: EntityScope, thread_id: str) -> str | None:
    """The thread's title and newest messages, as one delimited block."""
    try:
        thread = await scope.store.load_thread(thread_id, scope.context)
        page = await scope.store.load_thread_items(
            thread_id, None, THREAD_ITEMS, "desc", scope.context
        )
    except NotFoundError:
        return None
    lines: list[str] = []
    room = THREAD_CHARS
    for item in page.data:  # newest first: the newest messages are kept whole
        line = message_line(item)
        if line is None:
            continue
        if len(line) > room:
            if room > 20:
                lines.append(line[: room - 1] + "…")
            break
        lines.append(line)
        room -= len(line)
    title = " ".join((thread.title or "").split()) or "Untitled"
    header = f"An earlier conversation of the user, titled: {title}"
    body = [header, "Its newest messages, oldest first:", *reversed(lines)]
    return fenced("TAGGED_THREAD", "\n".join(body))


async def preview_thread(scope: EntityScope, thread_id: str) -> dict[str, Any] | None:
    """A Basic widget: the thread's title and the start of its newest message."""
    try:
        thread = await scope.store.load_thread(thread_id, scope.context)
        page = await scope.store.load_thread_items(thread_id, None, 1, "desc", scope.context)
    except NotFoundError:
        return None
    newest = message_line(page.data[0]) if page.data else None
    snippet = " ".join((newest or "No messages yet").split())
    return {
        "type": "Basic",
        "children": [
            {"type": "Title", "value": thread.title or "Untitled"},
            {"type": "Text", "value": snippet[:200], "color": "secondary"},
        ],
    }


ENTITY_TYPES: dict[str, EntityType] = {
    "thread": EntityType(search=search_threads, resolve=resolve_thread, preview=preview_thread),
}
"""Every entity type the composer can tag, by `data.type`."""


async def search_entities(scope: EntityScope, text: str, limit: int = MAX_RESULTS) -> list[Entity]:
    """Entities of every type matching `text`, at most `limit`."""
    found: list[Entity] = []
    for entity_type in ENTITY_TYPES.values():
        found += await entity_type.search(scope, text, limit - len(found))
        if len(found) >= limit:
            break
    return found[:limit]


async def resolve_entity(scope: EntityScope, type_: object, entity_id: str) -> str | None:
    """What the model reads for a tagged entity; None if unknown or not the user's."""
    entity_type = ENTITY_TYPES.get(type_) if isinstance(type_, str) else None
    return await entity_type.resolve(scope, entity_id) if entity_type is not None else None


async def preview_entity(scope: EntityScope, type_: str, entity_id: str) -> dict[str, Any] | None:
    """The entity's preview widget; None when its type has none or the user cannot see it."""
    entity_type = ENTITY_TYPES.get(type_)
    if entity_type is None or entity_type.preview is None:
        return None
    return await entity_type.preview(scope, entity_id)
