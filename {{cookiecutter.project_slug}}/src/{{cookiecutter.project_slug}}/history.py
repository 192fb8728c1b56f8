"""Thread history -> model input: the newest items, in a form both OpenAI APIs accept.

`load_history` reads the newest HISTORY_ITEMS items (newest page, then oldest first: loading
with `order="asc"` would feed the model the thread's *oldest* items). `HistoryConverter`
sends earlier turns as plain strings and attachments as images, PDF files or text.
"""

from __future__ import annotations

import base64
from typing import Protocol, runtime_checkable

from agents import TResponseInputItem
from chatkit.agents import ThreadItemConverter
from chatkit.store import NotFoundError, Store
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

from .context import RequestContext


@runtime_checkable
class AttachmentContents(Protocol):
    """A store that also keeps the bytes of uploaded attachments (PostgresStore does)."""

    async def load_attachment_content(
        self, attachment_id: str, context: RequestContext
    ) -> bytes: ...


TEXT_MIME_TYPES = ("application/json", "application/xml", "application/yaml", "application/csv")
MAX_ATTACHMENT_TEXT_CHARS = 100_000


def data_url(mime_type: str, content: bytes) -> str:
    """`data:` URL of the bytes, as the OpenAI APIs accept images and files inline."""
    return f"data:{mime_type};base64,{base64.b64encode(content).decode()}"


class HistoryConverter(ThreadItemConverter):
    """Thread items -> model input that both the Responses and Chat Completions APIs accept.

    The stock converter sends earlier assistant turns as `output_text` parts, which the Agents
    SDK's Chat Completions converter rejects; plain string content works for both APIs.
    Attachments go to the model as images, PDF files or text, read from the store.
    """

    def __init__(
        self, contents: AttachmentContents | None = None, context: RequestContext | None = None
    ) -> None:
        self.contents = contents
        self.context = context

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
        content = await self._content(attachment.id)
        mime = attachment.mime_type
        if content is None:
            note = f"[The user attached {attachment.name!r} ({mime}); it was not uploaded.]"
            return ResponseInputTextParam(type="input_text", text=note)
        if mime.startswith("image/"):
            return ResponseInputImageParam(
                type="input_image", detail="auto", image_url=data_url(mime, content)
            )
        if mime == "application/pdf":
            return ResponseInputFileParam(
                type="input_file", file_data=data_url(mime, content), filename=attachment.name
            )
        if mime.startswith("text/") or mime in TEXT_MIME_TYPES:
            text = content.decode("utf-8", errors="replace")[:MAX_ATTACHMENT_TEXT_CHARS]
            return ResponseInputTextParam(
                type="input_text", text=f"[Attached file {attachment.name!r}]\n{text}"
            )
        note = f"[The user attached {attachment.name!r} ({mime}), a format the model cannot read.]"
        return ResponseInputTextParam(type="input_text", text=note)

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> ResponseInputContentParam:
        return ResponseInputTextParam(type="input_text", text=f"@{tag.text}: {tag.data}")

    async def _content(self, attachment_id: str) -> bytes | None:
        if self.contents is None or self.context is None:
            return None
        try:
            return await self.contents.load_attachment_content(attachment_id, self.context)
        except NotFoundError:
            return None


def converter_for(store: Store[RequestContext], context: RequestContext) -> HistoryConverter:
    """The history converter for this request (it reads attachments as this user)."""
    contents = store if isinstance(store, AttachmentContents) else None
    return HistoryConverter(contents, context)


async def load_history(
    store: Store[RequestContext], thread: ThreadMetadata, context: RequestContext, limit: int
) -> list[ThreadItem]:
    """The newest `limit` items of the thread, oldest first (one keyset query, newest page)."""
    page = await store.load_thread_items(thread.id, None, limit, "desc", context)
    return list(reversed(page.data))
