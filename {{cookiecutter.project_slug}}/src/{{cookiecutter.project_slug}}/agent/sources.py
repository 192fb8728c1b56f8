"""Sources a tool cites (`cite(ctx, URLSource(...))`): respond.py attaches them to the model's
next answer as ChatKit annotations (the Sources list under the message), stored with it."""

from __future__ import annotations

from chatkit.types import Annotation, AssistantMessageItem, EntitySource, FileSource, URLSource

from .services import ToolContext

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
        if _key(source) not in seen:
            seen.add(_key(source))
            part.annotations.append(Annotation(source=source, index=len(part.text)))
    sources.clear()


def _key(source: Source) -> tuple[str, str]:
    if isinstance(source, URLSource):
        return "url", source.url
    if isinstance(source, FileSource):
        return "file", source.filename
    return "entity", source.id
