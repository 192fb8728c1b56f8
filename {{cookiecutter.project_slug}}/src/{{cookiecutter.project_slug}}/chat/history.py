"""Thread history as model input: the newest items, within MAX_MODEL_INPUT_BYTES for the whole
request (the oldest items out first, then files as notes; docs/design_decisions.md, "What the
model sees")."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from agents import TResponseInputItem
from chatkit.agents import ThreadItemConverter
from chatkit.store import Store
from chatkit.types import (
    AssistantMessageItem,
    Attachment,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputFileParam,
    ResponseInputImageParam,
    ResponseInputTextParam,
)
from openai.types.responses.response_input_content_param import ResponseInputContentParam

from ..context import RequestContext


@runtime_checkable
class AttachmentContents(Protocol):
    async def load_attachment_contents(
        self,
        attachment_ids: Sequence[str],
        budget: int,
        context: RequestContext,
        overhead: int = 0,
    ) -> dict[str, tuple[int, bytes | None]]:
        """Size of each attachment with content, and the bytes of the longest prefix of
        `attachment_ids` whose sizes (plus `overhead` each) add up to at most `budget`."""
        ...


TEXT_MIME_TYPES = ("application/json", "application/xml", "application/yaml", "application/csv")
MAX_ATTACHMENT_TEXT_CHARS = 100_000
MAX_NOTE_NAME_CHARS = 255
DEFAULT_MAX_INPUT_BYTES = 20 * 1024 * 1024
INLINE_OVERHEAD_BYTES = 1024
"""What one inline file costs beyond its base64 (the part's JSON, the data: prefix, its name)."""


def json_size(value: Any) -> int:
    """The bytes of `value` in a request's body (compact UTF-8 JSON, as the openai SDK sends)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text) if text.isascii() else len(text.encode())


def inline_cost(size: int) -> int:
    """What a file of `size` bytes adds to a request when sent inline (base64, framing)."""
    return -(-size // 3) * 4 + INLINE_OVERHEAD_BYTES


def model_can_read(mime_type: str) -> bool:
    return (
        mime_type.startswith(("image/", "text/"))
        or mime_type == "application/pdf"
        or mime_type in TEXT_MIME_TYPES
    )


def human_size(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} KB"
    return f"{size} bytes"


def data_url(mime_type: str, content: bytes) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(content).decode()}"


class HistoryConverter(ThreadItemConverter):
    """Thread items as input both OpenAI APIs accept (plain strings for earlier turns), the
    whole input within `max_input_bytes`, attachments inline while they fit, the others notes."""

    def __init__(
        self,
        contents: AttachmentContents | None = None,
        context: RequestContext | None = None,
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    ) -> None:
        self.contents = contents
        self.context = context
        self.max_input_bytes = max_input_bytes
        self._planned: dict[int, bytes | str] = {}
        """What each attachment object of the items being converted becomes: its bytes
        (inline) or a note; keyed by object identity (the same id may be in two messages)."""
        self._last: ThreadItem | None = None
        self.withheld: list[Attachment] = []
        """The newest message's attachments the last conversion left out for the budget."""

    async def to_agent_input(
        self, thread_items: Sequence[ThreadItem] | ThreadItem
    ) -> list[TResponseInputItem]:
        """The items as model input, within the budget: the oldest left out and files kept
        as notes while it would be over."""
        items = list(thread_items) if isinstance(thread_items, Sequence) else [thread_items]
        self._last = items[-1] if items else None
        self.withheld = []
        try:
            self._planned = {}  # every file a note: what the conversation costs without them
            converted = [await self._convert(item) for item in items]
            total = json_size(converted)  # one pass; item by item only when over the budget
            sizes = [total - 2] + [0] * (len(converted) - 1)
            if total > self.max_input_bytes:
                sizes = [json_size(part) for part in converted]
                first = self._oldest_kept(items, sizes)
                items, converted, sizes = items[first:], converted[first:], sizes[first:]
            newest_first = [item for item in reversed(items) if isinstance(item, UserMessageItem)]
            self._planned = await self._plan(
                [
                    (a, rank == 0)
                    for rank, item in enumerate(newest_first)
                    for a in item.attachments
                ],
                self.max_input_bytes - sum(sizes),
            )
            for index, item in enumerate(items):
                if isinstance(item, UserMessageItem) and item.attachments:
                    before = json_size(converted[index])
                    converted[index] = await self._convert(item)
                    sizes[index] += json_size(converted[index]) - before
            await self._fit(items, converted, sizes)
            return [part for parts in converted for part in parts]
        finally:
            self._planned, self._last = {}, None

    async def _convert(self, item: ThreadItem) -> list[TResponseInputItem]:
        return await super().to_agent_input([item])

    def _oldest_kept(self, items: list[ThreadItem], sizes: list[int]) -> int:
        """The index of the oldest item that fits: the newest user message always goes."""
        newest = max(
            (i for i, it in enumerate(items) if isinstance(it, UserMessageItem)), default=0
        )
        total, first = sum(sizes), 0
        while first < newest and total > self.max_input_bytes:
            total -= sizes[first]
            first += 1
        return first

    async def _fit(
        self, items: list[ThreadItem], converted: list[list[TResponseInputItem]], sizes: list[int]
    ) -> None:
        """While the input is over the budget (text files escape more than planned), the
        oldest message's inline files become notes."""
        for index, item in enumerate(items):
            if sum(sizes) <= self.max_input_bytes:
                return
            inline = [a for a in getattr(item, "attachments", []) if id(a) in self._planned]
            if not any(isinstance(self._planned[id(a)], bytes) for a in inline):
                continue
            for attachment in inline:
                self._planned[id(attachment)] = note(attachment, "resent")
            before = json_size(converted[index])
            converted[index] = await self._convert(item)
            sizes[index] += json_size(converted[index]) - before

    async def _plan(
        self, attachments: list[tuple[Attachment, bool]], budget: int
    ) -> dict[int, bytes | str]:
        """Bytes or a note for each attachment, given newest first with "is it in the newest
        message": inline while they fit in `budget`, notes from the first that does not."""
        readable = [a.id for a, _newest in attachments if model_can_read(a.mime_type)]
        stored: dict[str, tuple[int, bytes | None]] = {}
        if readable and self.contents is not None and self.context is not None:
            ids = list(dict.fromkeys(readable))
            stored = await self.contents.load_attachment_contents(
                ids, max(budget, 0) * 3 // 4, self.context, INLINE_OVERHEAD_BYTES * 3 // 4 + 3
            )
        plan: dict[int, bytes | str] = {}
        used, full = 0, False
        for attachment, newest in attachments:
            if not model_can_read(attachment.mime_type):
                plan[id(attachment)] = note(attachment, "unreadable")
                continue
            if attachment.id not in stored:
                plan[id(attachment)] = note(attachment, "missing")
                continue
            size, content = stored[attachment.id]
            cost = inline_cost(size)
            full = full or content is None or used + cost > budget
            if not full and content is not None:
                used += cost
                plan[id(attachment)] = content
            else:
                if newest:
                    self.withheld.append(attachment)
                plan[id(attachment)] = note(attachment, "too large" if newest else "resent", size)
        return plan

    async def user_message_to_input(
        self, item: UserMessageItem, is_last_message: bool = True
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        # Plain text as a plain string: the SDKs rewrite every part of every item on each call.
        plain = not item.attachments and not item.quoted_text
        if plain and all(isinstance(part, UserMessageTextContent) for part in item.content):
            text = "".join(
                part.text for part in item.content if isinstance(part, UserMessageTextContent)
            )
            return EasyInputMessageParam(type="message", role="user", content=text)
        # items are converted one at a time: "last" is the last of the whole history
        last = self._last is None or item is self._last
        return await super().user_message_to_input(item, last)

    async def assistant_message_to_input(
        self, item: AssistantMessageItem
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        text = "".join(part.text for part in item.content)
        return EasyInputMessageParam(type="message", role="assistant", content=text)

    async def attachment_to_message_content(
        self, attachment: Attachment
    ) -> ResponseInputContentParam:
        planned = self._planned.get(id(attachment))
        if planned is None:
            planned = note(attachment, "resent")
        if isinstance(planned, str):
            return ResponseInputTextParam(type="input_text", text=planned)
        content, mime = planned, attachment.mime_type
        if mime.startswith("image/"):
            return ResponseInputImageParam(
                type="input_image", detail="auto", image_url=data_url(mime, content)
            )
        if mime == "application/pdf":
            return ResponseInputFileParam(
                type="input_file",
                file_data=data_url(mime, content),
                filename=attachment.name[:MAX_NOTE_NAME_CHARS],
            )
        text = content.decode("utf-8", errors="replace")[:MAX_ATTACHMENT_TEXT_CHARS]
        name = attachment.name[:MAX_NOTE_NAME_CHARS]
        return ResponseInputTextParam(type="input_text", text=f"[Attached file {name!r}]\n{text}")

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> ResponseInputContentParam:
        return ResponseInputTextParam(type="input_text", text=f"@{tag.text}: {tag.data}")


def note(attachment: Attachment, why: str, size: int | None = None) -> str:
    """The one line that stands for a file not sent inline (names cut to 255 characters)."""
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


def converter_for(
    store: Store[RequestContext],
    context: RequestContext,
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
) -> HistoryConverter:
    contents = store if isinstance(store, AttachmentContents) else None
    return HistoryConverter(contents, context, max_input_bytes)


async def load_history(
    store: Store[RequestContext], thread: ThreadMetadata, context: RequestContext, limit: int
) -> list[ThreadItem]:
    """The newest `limit` items, oldest first (`order="asc"` would give the oldest)."""
    page = await store.load_thread_items(thread.id, None, limit, "desc", context)
    return list(reversed(page.data))
