"""Thread titles, asked of the model beside the answer (never before its first token), the
message's first words when that fails or takes over TITLE_WAIT_SECONDS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Protocol, runtime_checkable

import openai
from chatkit.store import NotFoundError, Store
from chatkit.types import ThreadMetadata, UserMessageItem, UserMessageTextContent

from ..context import RequestContext
from ..errors import MissingApiKeyError
from ..ops.usage import Meter
from .model import ModelGateway

logger = logging.getLogger(__name__)

TITLE_INSTRUCTIONS = (
    "Write a short title (at most six words) for a conversation that starts with the user's "
    "message below. Answer with the title only, no quotes, no final punctuation."
)
TITLE_MAX_CHARS = 80
TITLE_WAIT_SECONDS = 5.0


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


async def generate_title(gateway: ModelGateway, text: str, meter: Meter | None = None) -> str:
    """A short title from the model (its tokens on `meter`), else the message's first words."""
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
            if meter is not None and (counted := completion.usage) is not None:
                meter.add(
                    settings.openai_model, "title", counted.prompt_tokens, counted.completion_tokens
                )
        else:
            response = await gateway.client.responses.create(
                model=settings.openai_model,
                instructions=TITLE_INSTRUCTIONS,
                input=prompt,
                max_output_tokens=32,
            )
            raw = response.output_text
            if meter is not None and (used := response.usage) is not None:
                meter.add(settings.openai_model, "title", used.input_tokens, used.output_tokens)
    except (openai.OpenAIError, MissingApiKeyError, OSError) as exc:
        logger.info("title generation failed (%s); using the message's first words", type(exc))
        raw = ""
    return clean_title(raw) or fallback_title(text)


@runtime_checkable
class FreshThreads(Protocol):
    """A store that can read a thread past its per-request cache (PostgresStore can)."""

    async def reload_thread(self, thread_id: str, context: RequestContext) -> ThreadMetadata: ...


async def set_title_unless_named(
    store: Store[RequestContext], thread: ThreadMetadata, title: str, context: RequestContext
) -> None:
    """Give the thread the generated title, unless it got one while the answer streamed: from
    a tool (`thread.title`) or a rename in another request (read again from the store)."""
    if thread.title is not None:
        return
    try:
        if isinstance(store, FreshThreads):
            stored = await store.reload_thread(thread.id, context)
        else:
            stored = await store.load_thread(thread.id, context)
    except NotFoundError:
        return  # deleted meanwhile
    if stored.title is None:
        thread.title = title


async def title_or_fallback(task: asyncio.Task[str], message: UserMessageItem | None) -> str:
    try:
        return await asyncio.wait_for(asyncio.shield(task), TITLE_WAIT_SECONDS)
    except (TimeoutError, asyncio.CancelledError, Exception):
        with contextlib.suppress(Exception):
            task.cancel()
        return fallback_title(user_text(message) if message else "")
