"""Answer a user message with an OpenAI model, streamed as ChatKit events.

`respond` is the heart of the app, shaped like the ChatKit guide's: load the thread's recent
history, run an Agents SDK agent on it, and turn the streamed run into ChatKit events with
`stream_agent_response`. Around it sit the fixes a real deployment needs: item ids come from
the store (Chat Completions models all answer with the same placeholder id), history is sent
in a form both OpenAI APIs accept, model failures become readable error events, the model call
is cancelled with the client, and the thread gets a title without delaying the answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from functools import cached_property
from typing import Annotated, Any, Protocol, Union, get_args, runtime_checkable

import openai
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    TResponseInputItem,
)
from agents.exceptions import AgentsException
from chatkit.agents import AgentContext, ThreadItemConverter, stream_agent_response
from chatkit.errors import CustomStreamError
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AssistantMessageItem,
    Attachment,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)
from openai import omit
from openai.resources.chat import AsyncChat, AsyncCompletions
from openai.resources.responses import AsyncResponses
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputFileParam,
    ResponseInputImageParam,
    ResponseInputTextParam,
    ResponseStreamEvent,
)
from openai.types.responses.response_input_content_param import ResponseInputContentParam
from pydantic import Field, TypeAdapter, ValidationError

from .context import RequestContext
from .settings import Settings

logger = logging.getLogger(__name__)

TITLE_INSTRUCTIONS = (
    "Write a short title (at most six words) for a conversation that starts with the user's "
    "message below. Answer with the title only, no quotes, no final punctuation."
)
TITLE_MAX_CHARS = 80
TITLE_WAIT_SECONDS = 5.0


# The Responses stream's event union, discriminated on `type` (see PassThroughOpenAI).
_EVENT_TYPES: Any = Union[get_args(get_args(ResponseStreamEvent)[0])]  # noqa: UP007
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(Annotated[_EVENT_TYPES, Field(discriminator="type")])


class PassThroughResponses(AsyncResponses):
    """`responses.create` that sends the conversation (`input`) exactly as it is given."""

    async def create(self, **params: Any) -> Any:
        return await super().create(**_send_as_is(params, "input", absent=omit))


class PassThroughCompletions(AsyncCompletions):
    """`chat.completions.create` that sends `messages` exactly as they are given."""

    async def create(self, **params: Any) -> Any:
        return await super().create(**_send_as_is(params, "messages", absent=[]))


class PassThroughChat(AsyncChat):
    @cached_property
    def completions(self) -> AsyncCompletions:
        return PassThroughCompletions(self._client)


class PassThroughOpenAI(openai.AsyncOpenAI):
    """The openai client, minus its per-call rewrite of the conversation.

    The SDK passes every request body through a type-driven transformer that costs about
    0.3 ms per history item: 5-6 ms for 20 items, more than all of this app's own work in a
    turn, spent before the request leaves. The Agents SDK has already made the conversation
    plain JSON, so it goes in `extra_body`, which the SDK sends untouched.
    """

    @cached_property
    def responses(self) -> AsyncResponses:
        return PassThroughResponses(self)

    def _process_response_data(self, *, data: object, cast_to: Any, response: Any) -> Any:
        """Parse each streamed Responses event with a discriminated union (on `type`).

        The SDK tries the ~60 event types one after another (about 55 us an event, a fifth
        of this app's CPU under load); a discriminated union picks the right one at once
        (about 1 us). Anything it cannot parse goes the SDK's own, lenient way.
        """
        if cast_to is ResponseStreamEvent:
            with contextlib.suppress(ValidationError):
                return STREAM_EVENT.validate_python(data)
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)

    @cached_property
    def chat(self) -> AsyncChat:
        return PassThroughChat(self)


def _send_as_is(params: dict[str, Any], field: str, absent: object) -> dict[str, Any]:
    """`params` with `field` (a list) moved into `extra_body`, which skips the transformer."""
    value = params.get(field)
    if not isinstance(value, list):
        return params
    extra_body = {**(params.get("extra_body") or {}), field: value}
    return {**params, field: absent, "extra_body": extra_body}


class MissingApiKeyError(Exception):
    """OPENAI_API_KEY is not configured; raised when a message needs the model."""


class ModelGateway:
    """The OpenAI client and model for the app, built lazily (a missing key never stops startup)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: openai.AsyncOpenAI | None = None

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The shared AsyncOpenAI client (one connection pool for the whole app)."""
        if self._client is None:
            key = self.settings.openai_api_key
            if key is None or not key.get_secret_value().strip():
                raise MissingApiKeyError
            self._client = PassThroughOpenAI(
                api_key=key.get_secret_value(),
                base_url=self.settings.openai_base_url,
                timeout=self.settings.openai_timeout,
                max_retries=self.settings.openai_max_retries,
            )
        return self._client

    def model(self) -> Model:
        """The Agents SDK model for OPENAI_API (Responses by default, or Chat Completions)."""
        if self.settings.openai_api == "chat_completions":
            return OpenAIChatCompletionsModel(self.settings.openai_model, openai_client=self.client)
        return OpenAIResponsesModel(self.settings.openai_model, openai_client=self.client)

    async def close(self) -> None:
        """Release the client's connections."""
        if self._client is not None:
            await self._client.close()
            self._client = None


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


async def with_store_ids(
    events: AsyncIterator[ThreadStreamEvent], new_id: Callable[[], str]
) -> AsyncIterator[ThreadStreamEvent]:
    """Give every assistant message an id from the store instead of the model's.

    Chat Completions models answer every message with the placeholder `__fake_id__`, so
    without this each reply would overwrite the previous one.
    """
    ids: dict[str, str] = {}
    async for event in events:
        if isinstance(event, ThreadItemAddedEvent | ThreadItemDoneEvent | ThreadItemReplacedEvent):
            item = event.item
            if isinstance(item, AssistantMessageItem):
                model_id = item.id
                if isinstance(event, ThreadItemAddedEvent) or model_id not in ids:
                    ids[model_id] = new_id()
                item.id = ids[model_id]
                if not isinstance(event, ThreadItemAddedEvent):
                    ids.pop(model_id, None)
        elif isinstance(event, ThreadItemUpdatedEvent | ThreadItemRemovedEvent):
            event.item_id = ids.get(event.item_id, event.item_id)
        yield event


def model_error(exc: BaseException, settings: Settings) -> CustomStreamError | None:
    """A readable ChatKit error for a failed model call (None: not a model failure)."""
    if isinstance(exc, MissingApiKeyError):
        return CustomStreamError(
            "The server has no OpenAI API key (set OPENAI_API_KEY).", allow_retry=False
        )
    if isinstance(exc, openai.AuthenticationError):
        return CustomStreamError(
            "The model provider rejected the server's API key (401).", allow_retry=False
        )
    if isinstance(exc, openai.PermissionDeniedError):
        return CustomStreamError("The model provider denied access (403).", allow_retry=False)
    if isinstance(exc, openai.RateLimitError):
        wait = exc.response.headers.get("retry-after")
        hint = f" Try again in {wait} s." if wait else " Try again in a moment."
        return CustomStreamError(f"The model is busy (rate limited).{hint}", allow_retry=True)
    if isinstance(exc, openai.NotFoundError):
        return CustomStreamError(
            f"The model {settings.openai_model!r} was not found at the provider.",
            allow_retry=False,
        )
    if isinstance(exc, openai.APITimeoutError):
        return CustomStreamError(
            f"The model did not answer within {settings.openai_timeout:g} seconds.",
            allow_retry=True,
        )
    if isinstance(exc, openai.APIConnectionError):
        return CustomStreamError("Could not reach the model provider.", allow_retry=True)
    if isinstance(exc, openai.APIStatusError):
        retry = exc.status_code >= 500
        return CustomStreamError(
            f"The model provider answered with an error ({exc.status_code}).", allow_retry=retry
        )
    if isinstance(exc, openai.OpenAIError | AgentsException | OSError):
        return CustomStreamError("The model call failed.", allow_retry=True)
    return None


def fallback_title(text: str) -> str:
    """A title made from the message itself: its first words, at most TITLE_MAX_CHARS."""
    words = " ".join(text.split())
    if len(words) <= TITLE_MAX_CHARS:
        return words or "New conversation"
    return words[: TITLE_MAX_CHARS - 1].rsplit(" ", 1)[0] + "…"


def clean_title(raw: str) -> str:
    """Strip quotes, a 'Title:' prefix and trailing punctuation from a model-made title."""
    quotes = "\"'`*#\u201c\u201d\u2018\u2019"
    title = re.sub(r"^\W*title\s*:\s*", "", " ".join(raw.split()), flags=re.IGNORECASE)
    title = title.strip(quotes + " ").rstrip(".!\u3002 ").strip(quotes + " ")
    return title[:TITLE_MAX_CHARS]


def user_text(item: UserMessageItem) -> str:
    """The plain text of a user message (tags as @name)."""
    return "".join(
        part.text if isinstance(part, UserMessageTextContent) else f"@{part.text}"
        for part in item.content
    )


async def generate_title(gateway: ModelGateway, text: str) -> str:
    """Ask the model for a short thread title; fall back to the message's first words."""
    settings = gateway.settings
    prompt = text[:2000]
    try:
        if settings.openai_api == "chat_completions":
            completion = await gateway.client.chat.completions.create(
                model=settings.openai_model,
                messages=[
                    {"role": "system", "content": TITLE_INSTRUCTIONS},
                    {"role": "user", "content": prompt},
                ],
                max_tokens=24,
            )
            raw = completion.choices[0].message.content or ""
        else:
            response = await gateway.client.responses.create(
                model=settings.openai_model,
                instructions=TITLE_INSTRUCTIONS,
                input=prompt,
                max_output_tokens=32,
            )
            raw = response.output_text
    except (openai.OpenAIError, MissingApiKeyError, OSError) as exc:
        logger.info("title generation failed (%s); using the message's first words", type(exc))
        raw = ""
    return clean_title(raw) or fallback_title(text)


async def respond(
    thread: ThreadMetadata,
    input_user_message: UserMessageItem | None,
    context: RequestContext,
    *,
    store: Store[RequestContext],
    gateway: ModelGateway,
) -> AsyncIterator[ThreadStreamEvent]:
    """Stream the model's answer to the thread's newest message as ChatKit events."""
    settings = gateway.settings
    wants_title = settings.generate_titles and thread.title is None
    title_task: asyncio.Task[str] | None = None
    try:
        history = await load_history(store, thread, context, settings.history_items)
        agent = Agent[AgentContext[RequestContext]](
            name="assistant", instructions=settings.instructions, model=gateway.model()
        )
        agent_context = AgentContext[RequestContext](
            thread=thread, store=store, request_context=context
        )
        result = Runner.run_streamed(
            agent,
            await converter_for(store, context).to_agent_input(history),
            context=agent_context,
            run_config=RunConfig(tracing_disabled=not settings.agents_tracing),
        )

        def new_id() -> str:
            return store.generate_item_id("message", thread, context)

        try:
            async for event in with_store_ids(stream_agent_response(agent_context, result), new_id):
                if wants_title and title_task is None and input_user_message is not None:
                    # Ask for a title once the answer is under way: it runs alongside the
                    # rest of the answer and never competes with its first token.
                    title = generate_title(gateway, user_text(input_user_message))
                    title_task = asyncio.create_task(title)
                yield event
        finally:
            result.cancel()  # stops the model request when the client goes away
        if title_task is not None:
            thread.title = await _title_or_fallback(title_task, input_user_message)
    except Exception as exc:
        if (error := model_error(exc, settings)) is None:
            raise
        logger.warning("model call failed: %s", type(exc).__name__)
        raise error from exc
    finally:
        if title_task is not None and not title_task.done():
            title_task.cancel()


async def _title_or_fallback(task: asyncio.Task[str], message: UserMessageItem | None) -> str:
    try:
        return await asyncio.wait_for(asyncio.shield(task), TITLE_WAIT_SECONDS)
    except (TimeoutError, asyncio.CancelledError, Exception):
        with contextlib.suppress(Exception):
            task.cancel()
        return fallback_title(user_text(message) if message else "")
