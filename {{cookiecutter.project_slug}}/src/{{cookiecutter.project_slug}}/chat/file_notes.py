"""What stands for a file or a generated image the model request does not carry inline: one
line naming it (`note`), and which of a thread's items carry something that may go inline."""

from __future__ import annotations

from collections.abc import Sequence

from chatkit.types import Attachment, GeneratedImageItem, ThreadItem, UserMessageItem

from ..store.image_store import image_id_in

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
