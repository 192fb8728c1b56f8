"""Sources a tool cites (`cite(ctx, URLSource(...))`): respond.py attaches them to the model's
next answer as ChatKit annotations (the Sources list under the message), stored with it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents import RunContextWrapper
from chatkit.types import Annotation, AssistantMessageItem, EntitySource, FileSource, URLSource

Source = URLSource | FileSource | EntitySource

_cited: dict[int, list[Source]] = {}
"""The sources cited in each running turn, by the id of its agent context."""


def cite(ctx: RunContextWrapper[Any], *sources: Source) -> None:
    """Attach sources to the model's next answer in this turn (call it from a tool)."""
    cited = _cited.get(id(ctx.context))
    if cited is not None:
        cited.extend(sources)


@contextmanager
def collecting(agent_context: object) -> Iterator[list[Source]]:
    """The sources tools cite while the turn of `agent_context` runs."""
    cited: list[Source] = []
    _cited[id(agent_context)] = cited
    try:
        yield cited
    finally:
        _cited.pop(id(agent_context), None)


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
