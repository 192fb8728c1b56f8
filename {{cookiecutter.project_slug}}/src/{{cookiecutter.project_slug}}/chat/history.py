"""Thread history -> model input: the newest items, in a form both OpenAI APIs accept.

`load_history` reads the newest HISTORY_ITEMS items (newest page, then oldest first: loading
with `order="asc"` would feed the model the thread's *oldest* items). `HistoryConverter`
sends earlier turns as plain strings and attachments as images, PDF files or text.

Attachments inline in one model request are bounded by MAX_MODEL_INPUT_BYTES (their stored
sizes added up). The newest user message's attachments come first, then each earlier
message's, newest first; they go inline in that order while they fit, and from the first one
that does not fit on, each becomes a one-line note (`[The user attached 'x.png' (image/png,
1.2 MB) earlier; not resent]`). So the newest message's files reach the model, and a thread
full of images does not resend them all on every turn. The bytes of the ones that become
notes are not even read: one statement reads the sizes, and the bytes of those that fit.
"""

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

from ..agent.entities import EntityScope, resolve_entity
from ..context import RequestContext
from ..store.postgres import PostgresStore


@runtime_checkable
class AttachmentContents(Protocol):
    """A store that also keeps the bytes of uploaded attachments (PostgresStore does)."""

    async def load_attachment_contents(
        self, attachment_ids: Sequence[str], budget: int, context: RequestContext
    ) -> dict[str, tuple[int, bytes | None]]:
        """Size of each attachment with content, and the bytes of the longest prefix of
        `attachment_ids` whose sizes add up to at most `budget` (None for the others)."""
        ...


TEXT_MIME_TYPES = ("application/json", "application/xml", "application/yaml", "application/csv")
MAX_ATTACHMENT_TEXT_CHARS = 100_000
DEFAULT_MAX_INLINE_BYTES = 20 * 1024 * 1024


def model_can_read(mime_type: str) -> bool:
    """Whether the model gets this type's content (image, PDF, text) rather than a note."""
    return (
        mime_type.startswith(("image/", "text/"))
        or mime_type == "application/pdf"
        or mime_type in TEXT_MIME_TYPES
    )


def human_size(size: int) -> str:
    """`1.2 MB`, `340 KB`, `12 bytes`."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} KB"
    return f"{size} bytes"


def data_url(mime_type: str, content: bytes) -> str:
    """`data:` URL of the bytes, as the OpenAI APIs accept images and files inline."""
    return f"data:{mime_type};base64,{base64.b64encode(content).decode()}"


class HistoryConverter(ThreadItemConverter):
    """Thread items -> model input that both the Responses and Chat Completions APIs accept.

    The stock converter sends earlier assistant turns as `output_text` parts, which the Agents
    SDK's Chat Completions converter rejects; plain string content works for both APIs.
    Attachments go to the model as images, PDF files or text, read from the store, within
    `max_inline_bytes` per request (see the module's docstring); the others become notes.
    """

    def __init__(
        self,
        contents: AttachmentContents | None = None,
        context: RequestContext | None = None,
        max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES,
        entities: EntityScope | None = None,
    ) -> None:
        self.contents = contents
        self.context = context
        self.max_inline_bytes = max_inline_bytes
        self.entities = entities
        self._tags: dict[tuple[str, str], str | None] = {}
        """What each tagged entity (type, id) became, so a tag repeated in the history is
        looked up once per turn."""
        self._planned: dict[int, bytes | str] = {}
        """What each attachment object of the items being converted becomes: its bytes
        (inline) or a note; keyed by object identity (the same id may be in two messages)."""

    async def to_agent_input(
        self, thread_items: Sequence[ThreadItem] | ThreadItem
    ) -> list[TResponseInputItem]:
        """The items as model input, their attachments within the inline budget."""
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
        """Bytes or a note for each attachment, given newest first with "is it in the newest
        message": inline while they fit in the budget, notes from the first that does not."""
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
        """A plain-text message as a plain string (the SDKs rewrite every part of every
        input item on each call, so this is cheaper); anything richer as the SDK builds it."""
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
        """The tagged entity as the server finds it for this user (agent/entities.py), or the
        tag's visible text alone; the client-sent `data` never reaches the model."""
        type_ = tag.data.get("type")
        key = (str(type_), tag.id)
        if key not in self._tags:
            found = None
            if self.entities is not None:
                found = await resolve_entity(self.entities, type_, tag.id)
            self._tags[key] = found
        return ResponseInputTextParam(type="input_text", text=self._tags[key] or f"@{tag.text}")


def converter_for(
    store: Store[RequestContext],
    context: RequestContext,
    max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES,
) -> HistoryConverter:
    """The history converter for this request (it reads attachments and tags as this user)."""
    contents = store if isinstance(store, AttachmentContents) else None
    entities = EntityScope(store, context) if isinstance(store, PostgresStore) else None
    return HistoryConverter(contents, context, max_inline_bytes, entities)


async def load_history(
    store: Store[RequestContext], thread: ThreadMetadata, context: RequestContext, limit: int
) -> list[ThreadItem]:
    """The newest `limit` items of the thread, oldest first (one keyset query, newest page)."""
    page = await store.load_thread_items(thread.id, None, limit, "desc", context)
    return list(reversed(page.data))
