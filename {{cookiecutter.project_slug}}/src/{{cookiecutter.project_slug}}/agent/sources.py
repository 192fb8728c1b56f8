"""Sources a tool cites (`cite(ctx, URLSource(...))`): respond.py attaches them to the model's
next answer as ChatKit annotations (the Sources list under the message), stored with it. Only
http(s) links are kept, from tools and from the model alike (`safe_links`)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from chatkit.types import (
    Annotation,
    AssistantMessageContentPartAnnotationAdded,
    AssistantMessageItem,
    EntitySource,
    FileSource,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
    URLSource,
)

from .services import ToolContext

logger = logging.getLogger(__name__)
ITEM_EVENTS = (ThreadItemAddedEvent, ThreadItemDoneEvent, ThreadItemReplacedEvent)

Source = URLSource | FileSource | EntitySource


def cite(ctx: ToolContext, *sources: Source) -> None:
    """Attach sources to the model's next answer in this turn (call it from a tool)."""
    ctx.context.cited.extend(sources)


def attach(item: AssistantMessageItem, sources: list[Source]) -> None:
    """Add `sources` (then forget them) to the message's last text part, as annotations at its
    end; a source already there (same URL, file or entity) is not added twice."""
    if not item.content or not sources:
        return
    part = item.content[-1]
    seen = {_key(a.source) for a in part.annotations}
    for source in sources:
        if _key(source) not in seen and linkable(source):
            seen.add(_key(source))
            part.annotations.append(Annotation(source=source, index=len(part.text)))
    sources.clear()


def _key(source: Source) -> tuple[str, str]:
    if isinstance(source, URLSource):
        return "url", source.url
    if isinstance(source, FileSource):
        return "file", source.filename
    return "entity", source.id


def linkable(source: object) -> bool:
    """False (with a WARNING) for a URL source whose link is not http(s): a `javascript:` or
    `data:` link in the Sources list would run or show whatever it holds."""
    if not isinstance(source, URLSource):
        return True
    try:
        parts = urlsplit(source.url)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    except ValueError:
        ok = False
    if not ok:
        scheme = source.url.split(":", 1)[0][:20] if ":" in source.url else "no scheme"
        logger.warning("dropped a cited source whose link is not http(s) (%s)", scheme)
    return ok


def safe_links(event: ThreadStreamEvent) -> ThreadStreamEvent | None:
    """`event` without citations of non-http(s) links (None: the event only added one)."""
    if isinstance(event, ThreadItemUpdatedEvent):
        update = event.update
        if isinstance(update, AssistantMessageContentPartAnnotationAdded):
            return event if linkable(update.annotation.source) else None
        return event
    if isinstance(event, ITEM_EVENTS) and isinstance(event.item, AssistantMessageItem):
        for part in event.item.content:
            if any(isinstance(a.source, URLSource) for a in part.annotations):
                part.annotations = [a for a in part.annotations if linkable(a.source)]
    return event
