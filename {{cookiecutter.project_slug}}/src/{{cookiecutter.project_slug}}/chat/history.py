"""Thread history as model input: the newest items, attachments inline within
MAX_MODEL_INPUT_BYTES (docs/design_decisions.md, "What the model sees")."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

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
        self, attachment_ids: Sequence[str], budget: int, context: RequestContext
    ) -> dict[str, tuple[int, bytes | None]]: ...


TEXT_MIME_TYPES = ("application/json", "application/xml", "application/yaml", "application/csv")
MAX_ATTACHMENT_TEXT_CHARS = 100_000
DEFAULT_MAX_INLINE_BYTES = 20 * 1024 * 1024


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
    attachments inline within `max_inline_bytes`, the others as notes."""

    def __init__(
        self,
        contents: AttachmentContents | None = None,
        context: RequestContext | None = None,
        max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES,
    ) -> None:
        self.contents = contents
        self.context = context
        self.max_inline_bytes = max_inline_bytes
        # Bytes or a note per attachment object (the same id may be in two messages).
        self._planned: dict[int, bytes | str] = {}

    async def to_agent_input(
        self, thread_items: Sequence[ThreadItem] | ThreadItem
    ) -> list[TResponseInputItem]:
        items = list(thread_items) if isinstance(thread_items, Sequence) else [thread_items]
        newest_first = [item for item in reversed(items) if isinstance(item, UserMessageItem)]
        self._planned = await self._plan(
            [(a, rank == 0) for rank, item in enumerate(newest_first) for a in item.attachments]
        )
        try:
            return await super().to_agent_input(items)
        finally:
            self._planned = {}

    async def _plan(self, attachments: list[tuple[Attachment, bool]]) -> dict[int, bytes | str]:
        """Bytes while they fit in the budget (newest first), then notes."""
        readable = [a.id for a, _newest in attachments if model_can_read(a.mime_type)]
        stored: dict[str, tuple[int, bytes | None]] = {}
        if readable and self.contents is not None and self.context is not None:
            ids = list(dict.fromkeys(readable))
            stored = await self.contents.load_attachment_contents(
                ids, self.max_inline_bytes, self.context
            )
        plan: dict[int, bytes | str] = {}
        used, full = 0, False
        for attachment, newest in attachments:
            name, mime = attachment.name, attachment.mime_type
            if not model_can_read(mime):
                plan[id(attachment)] = (
                    f"[The user attached {name!r} ({mime}), a format the model cannot read.]"
                )
                continue
            if attachment.id not in stored:
                plan[id(attachment)] = (
                    f"[The user attached {name!r} ({mime}); it was not uploaded.]"
                )
                continue
            size, content = stored[attachment.id]
            full = full or content is None or used + size > self.max_inline_bytes
            if not full and content is not None:
                used += size
                plan[id(attachment)] = content
            elif newest:
                plan[id(attachment)] = (
                    f"[The user attached {name!r} ({mime}, {human_size(size)}); "
                    "too large to send to the model with this message.]"
                )
            else:
                plan[id(attachment)] = (
                    f"[The user attached {name!r} ({mime}, {human_size(size)}) earlier; not resent]"
                )
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
        return await super().user_message_to_input(item, is_last_message)

    async def assistant_message_to_input(
        self, item: AssistantMessageItem
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        text = "".join(part.text for part in item.content)
        return EasyInputMessageParam(type="message", role="assistant", content=text)

    async def attachment_to_message_content(
        self, attachment: Attachment
    ) -> ResponseInputContentParam:
        planned = self._planned.get(id(attachment))
        if planned is None:  # converted on its own, outside to_agent_input
            planned = (await self._plan([(attachment, True)]))[id(attachment)]
        if isinstance(planned, str):
            return ResponseInputTextParam(type="input_text", text=planned)
        content, mime = planned, attachment.mime_type
        if mime.startswith("image/"):
            return ResponseInputImageParam(
                type="input_image", detail="auto", image_url=data_url(mime, content)
            )
        if mime == "application/pdf":
            return ResponseInputFileParam(
                type="input_file", file_data=data_url(mime, content), filename=attachment.name
            )
        text = content.decode("utf-8", errors="replace")[:MAX_ATTACHMENT_TEXT_CHARS]
        return ResponseInputTextParam(
            type="input_text", text=f"[Attached file {attachment.name!r}]\n{text}"
        )

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> ResponseInputContentParam:
        return ResponseInputTextParam(type="input_text", text=f"@{tag.text}: {tag.data}")


def converter_for(
    store: Store[RequestContext],
    context: RequestContext,
    max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES,
) -> HistoryConverter:
    contents = store if isinstance(store, AttachmentContents) else None
    return HistoryConverter(contents, context, max_inline_bytes)


async def load_history(
    store: Store[RequestContext], thread: ThreadMetadata, context: RequestContext, limit: int
) -> list[ThreadItem]:
    """The newest `limit` items, oldest first (`order="asc"` would give the oldest)."""
    page = await store.load_thread_items(thread.id, None, limit, "desc", context)
    return list(reversed(page.data))
