"""Files and images a model request may carry inline: which ones fit the budget (`InlinePlanner`,
newest first) and the one-line `note` that stands for each one left out."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from chatkit.types import Attachment, GeneratedImageItem, ThreadItem, UserMessageItem

from ..context import RequestContext
from ..store.image_store import image_id_in

TEXT_MIME_TYPES = ("application/json", "application/xml", "application/yaml", "application/csv")
MAX_ATTACHMENT_TEXT_CHARS = 100_000
INLINE_OVERHEAD_BYTES = 1024
"""What one inline file costs beyond its base64 (the part's JSON, the data: prefix, its name)."""


@runtime_checkable
class AttachmentContents(Protocol):
    async def load_attachment_contents(
        self, ids: Sequence[str], budget: int, context: RequestContext, overhead: int = 0
    ) -> dict[str, tuple[int, bytes | None]]:
        """Sizes, and bytes of the longest prefix of `ids` within `budget` (+ `overhead` each)."""
        ...


class ImageContents(Protocol):
    """Where generated images are kept (store/image_store.py's GeneratedImageStore)."""

    async def load_image_contents(
        self, image_ids: Sequence[str], budget: int, context: RequestContext
    ) -> dict[str, tuple[int, bytes | None]]:
        """As `load_attachment_contents`, for generated images."""
        ...


Inline = Attachment | GeneratedImageItem
"""What may go inline in a request: a user's attachment or an image the agent generated."""

MAX_NOTE_NAME_CHARS = 255


def human_size(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} KB"
    return f"{size} bytes"


def our_image(item: GeneratedImageItem) -> str | None:
    """The id of the item's image in our table (None: a data: URL or someone else's link)."""
    return image_id_in(item.image.url) if item.image is not None else None


def inline_entries(items: Sequence[ThreadItem]) -> list[tuple[Inline, bool]]:
    """What may go inline, newest first, each with "is it in the newest user message"."""
    entries: list[tuple[Inline, bool]] = []
    newest = True
    for item in reversed(items):
        if isinstance(item, UserMessageItem):
            entries += [(attachment, newest) for attachment in item.attachments]
            newest = False
        elif isinstance(item, GeneratedImageItem) and our_image(item):
            entries.append((item, False))
    return entries


def inlined(item: ThreadItem) -> list[Inline]:
    """The item's attachments, or the item itself for one of our generated images."""
    if isinstance(item, UserMessageItem):
        return list(item.attachments)
    if isinstance(item, GeneratedImageItem) and our_image(item):
        return [item]
    return []


def note(entry: Inline, why: str, size: int | None = None) -> str:
    """The one line that stands for a file or image not sent inline (names cut to 255
    characters)."""
    if isinstance(entry, GeneratedImageItem):
        if why == "missing":
            return "[An image generated earlier; it is no longer stored.]"
        sized = f" ({human_size(size)})" if size is not None else ""
        return f"[An image generated earlier{sized}; not resent]"
    attachment = entry
    name, mime = attachment.name[:MAX_NOTE_NAME_CHARS], attachment.mime_type[:MAX_NOTE_NAME_CHARS]
    if why == "unreadable":
        return f"[The user attached {name!r} ({mime}), a format the model cannot read.]"
    if why == "missing":
        return f"[The user attached {name!r} ({mime}); it was not uploaded.]"
    sized = f"{mime}, {human_size(size)}" if size is not None else mime
    if why == "too large":
        return (
            f"[The user attached {name!r} ({sized}); "
            "too large to send to the model with this message.]"
        )
    return f"[The user attached {name!r} ({sized}) earlier; not resent]"


def inline_cost(size: int) -> int:
    """What a file of `size` bytes adds to a request when sent inline (base64, framing)."""
    return -(-size // 3) * 4 + INLINE_OVERHEAD_BYTES


def model_can_read(mime_type: str) -> bool:
    return (
        mime_type.startswith(("image/", "text/"))
        or mime_type == "application/pdf"
        or mime_type in TEXT_MIME_TYPES
    )


def data_url(mime_type: str, content: bytes) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(content).decode()}"


class InlinePlanner:
    """Which files and images go inline in a budget; `withheld`: the newest message's left out."""

    def __init__(
        self,
        contents: AttachmentContents | None,
        images: ImageContents | None,
        context: RequestContext | None,
    ) -> None:
        self.contents = contents
        self.images = images
        self.context = context
        self.withheld: list[Attachment] = []

    async def plan(self, entries: list[tuple[Inline, bool]], budget: int) -> dict[int, bytes | str]:
        """Bytes or a note for each entry (newest first, with "in the newest message"): inline
        while they fit in `budget`, notes from the first that does not."""
        stored, images = await self._load(entries, budget)
        plan: dict[int, bytes | str] = {}
        used, full = 0, False
        for entry, newest in entries:
            if isinstance(entry, GeneratedImageItem):
                found = images.get(our_image(entry) or "")
            elif not model_can_read(entry.mime_type):
                plan[id(entry)] = note(entry, "unreadable")
                continue
            else:
                found = stored.get(entry.id)
            if found is None:
                plan[id(entry)] = note(entry, "missing")
                continue
            size, content = found
            cost = inline_cost(size)
            full = full or content is None or used + cost > budget
            if not full and content is not None:
                used += cost
                plan[id(entry)] = content
            else:
                if newest and not isinstance(entry, GeneratedImageItem):
                    self.withheld.append(entry)
                plan[id(entry)] = note(entry, "too large" if newest else "resent", size)
        return plan

    async def _load(
        self, entries: list[tuple[Inline, bool]], budget: int
    ) -> tuple[dict[str, tuple[int, bytes | None]], dict[str, tuple[int, bytes | None]]]:
        """Sizes, and the bytes that fit in `budget`, of readable attachments and images."""
        readable, image_ids = [], []
        for entry, _newest in entries:
            if isinstance(entry, GeneratedImageItem):
                image_ids.append(our_image(entry) or "")
            elif model_can_read(entry.mime_type):
                readable.append(entry.id)
        stored: dict[str, tuple[int, bytes | None]] = {}
        images: dict[str, tuple[int, bytes | None]] = {}
        raw_budget = max(budget, 0) * 3 // 4
        if self.context is not None and readable and self.contents is not None:
            stored = await self.contents.load_attachment_contents(
                list(dict.fromkeys(readable)),
                raw_budget,
                self.context,
                INLINE_OVERHEAD_BYTES * 3 // 4 + 3,
            )
        if self.context is not None and image_ids and self.images is not None:
            images = await self.images.load_image_contents(image_ids, raw_budget, self.context)
        return stored, images
