"""Thread history as model input: the newest items within MAX_MODEL_INPUT_BYTES for the whole
request, the oldest out first, then files and images as notes (docs/design_decisions.md,
"What the model sees"); an item that cannot be converted is left out with a warning."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from agents import TResponseInputItem
from chatkit.agents import ThreadItemConverter
from chatkit.store import Store
from chatkit.types import (
    AssistantMessageItem,
    Attachment,
    GeneratedImageItem,
    HiddenContextItem,
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

from ..agent.entity_types import EntityScope, resolve_entity
from ..context import RequestContext
from ..store.image_store import image_mime_type
from ..store.postgres import PostgresStore
from .inline_files import (
    MAX_ATTACHMENT_TEXT_CHARS,
    MAX_NOTE_NAME_CHARS,
    AttachmentContents,
    ImageContents,
    InlinePlanner,
    data_url,
    inline_entries,
    inlined,
    note,
    our_image,
)

logger = logging.getLogger(__name__)


def json_size(value: Any) -> int:
    """The bytes of `value` in a request's body (compact UTF-8 JSON, as the openai SDK sends)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text) if text.isascii() else len(text.encode())


DEFAULT_MAX_INPUT_BYTES = 20 * 1024 * 1024


class HistoryConverter(ThreadItemConverter):
    """Thread items as input both OpenAI APIs accept, within `max_input_bytes` in all."""

    def __init__(
        self,
        contents: AttachmentContents | None = None,
        context: RequestContext | None = None,
        max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
        images: ImageContents | None = None,
        entities: EntityScope | None = None,
    ) -> None:
        self.contents = contents
        self.context = context
        self.max_input_bytes = max_input_bytes
        self.images = images
        self.entities = entities
        self._tags: dict[tuple[str, str], str | None] = {}
        """What each tagged entity (type, id) became: looked up once per turn."""
        self._planned: dict[int, bytes | str] = {}
        """Bytes (inline) or a note per attachment or image object (an id may recur)."""
        self._last: ThreadItem | None = None
        self.withheld: list[Attachment] = []
        """The newest message's attachments the last conversion left out for the budget."""
        self._planner = InlinePlanner(contents, images, context)

    async def to_agent_input(
        self, thread_items: Sequence[ThreadItem] | ThreadItem
    ) -> list[TResponseInputItem]:
        """The items as model input within the budget: the oldest out, then files as notes."""
        items = list(thread_items) if isinstance(thread_items, Sequence) else [thread_items]
        self._last = items[-1] if items else None
        self.withheld = self._planner.withheld = []
        try:
            self._planned = {}  # every file a note: what the conversation costs without them
            converted = [await self._convert(item) for item in items]
            total = json_size(converted)  # one pass; item by item only when over the budget
            sizes = [total - 2] + [0] * (len(converted) - 1)
            if total > self.max_input_bytes:
                sizes = [json_size(part) for part in converted]
                first = self._oldest_kept(items, sizes)
                items, converted, sizes = items[first:], converted[first:], sizes[first:]
            self._planned = await self._planner.plan(
                inline_entries(items), self.max_input_bytes - sum(sizes)
            )
            for index, item in enumerate(items):
                if inlined(item):
                    before = json_size(converted[index])
                    converted[index] = await self._convert(item)
                    sizes[index] += json_size(converted[index]) - before
            await self._fit(items, converted, sizes)
            return [part for parts in converted for part in parts]
        finally:
            self._planned, self._last = {}, None

    async def _convert(self, item: ThreadItem) -> list[TResponseInputItem]:
        try:
            return await super().to_agent_input([item])
        except Exception as exc:  # one unconvertible item must not fail every later turn
            logger.warning("model input: left out %s item %s (%s)", item.type, item.id, exc)
            return []

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
        """While over the budget (text escapes more than planned), inline files become notes."""
        for index, item in enumerate(items):
            if sum(sizes) <= self.max_input_bytes:
                return
            inline = [e for e in inlined(item) if isinstance(self._planned.get(id(e)), bytes)]
            if not inline:
                continue
            for entry in inline:
                self._planned[id(entry)] = note(entry, "resent")
            before = json_size(converted[index])
            converted[index] = await self._convert(item)
            sizes[index] += json_size(converted[index]) - before

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

    async def generated_image_to_input(
        self, item: GeneratedImageItem
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        """Our stored image, inline (the model cannot open our signed links), or a note."""
        planned = self._planned.get(id(item))
        if planned is None and our_image(item) is None:  # a data: URL or someone else's link
            return await super().generated_image_to_input(item)
        if not isinstance(planned, bytes):
            text = planned or note(item, "resent")
            return EasyInputMessageParam(type="message", role="user", content=text)
        intro = "The following image was generated by the agent."
        image_url = data_url(image_mime_type(planned), planned)
        return EasyInputMessageParam(
            type="message",
            role="user",
            content=[
                ResponseInputTextParam(type="input_text", text=intro),
                ResponseInputImageParam(type="input_image", detail="auto", image_url=image_url),
            ],
        )

    async def hidden_context_to_input(
        self, item: HiddenContextItem
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        """Hidden context of any JSON content (the SDK takes strings only), as JSON text."""
        if isinstance(item.content, str):
            return await super().hidden_context_to_input(item)
        text = json.dumps(item.content, default=str, ensure_ascii=False)
        return await super().hidden_context_to_input(item.model_copy(update={"content": text}))

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
        """The tagged entity as the server finds it for this user, or the tag's text alone (the
        client-sent `data` never reaches the model)."""
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
    max_input_bytes: int = DEFAULT_MAX_INPUT_BYTES,
    images: ImageContents | None = None,
) -> HistoryConverter:
    """The history converter for this request (it reads files, images and tags as the user)."""
    contents = store if isinstance(store, AttachmentContents) else None
    entities = EntityScope(store, context) if isinstance(store, PostgresStore) else None
    return HistoryConverter(contents, context, max_input_bytes, images, entities)


async def load_history(
    store: Store[RequestContext], thread: ThreadMetadata, context: RequestContext, limit: int
) -> list[ThreadItem]:
    """The newest `limit` items, oldest first (`order="asc"` would give the oldest)."""
    page = await store.load_thread_items(thread.id, None, limit, "desc", context)
    return list(reversed(page.data))
