"""The model gateway: one OpenAI client, built on first use (a missing key never stops the
app), the Agents SDK model, and `model_error`, the message a user sees for a failed call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import openai
from agents import Model, ModelResponse, OpenAIChatCompletionsModel, OpenAIResponsesModel
from agents.exceptions import AgentsException
from agents.items import TResponseOutputItem, TResponseStreamEvent
from chatkit.errors import CustomStreamError
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemDoneEvent,
)

from ..agent.catalogue import say
from ..agent.tool_errors import usable_arguments
from ..compat.openai_client import PassThroughOpenAI
from ..errors import MissingApiKeyError
from ..settings import Settings

NO_KEY = "no-key"  # the openai SDK insists on a key; local servers ignore it


def api_key_for(settings: Settings) -> str:
    """OPENAI_API_KEY, a placeholder for a server of your own at OPENAI_BASE_URL, or
    MissingApiKeyError for OpenAI's."""
    key = settings.openai_api_key
    if key is not None and key.get_secret_value().strip():
        return key.get_secret_value()
    base_url = (settings.openai_base_url or "").strip()
    if not base_url or (urlsplit(base_url).hostname or "").endswith("api.openai.com"):
        raise MissingApiKeyError
    return NO_KEY


class ModelGateway:
    """The OpenAI client and model for the app, built lazily (a missing key never stops startup)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: openai.AsyncOpenAI | None = None

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The shared AsyncOpenAI client (one connection pool for the whole app)."""
        if self._client is None:
            self._client = PassThroughOpenAI(
                api_key=api_key_for(self.settings),
                base_url=self.settings.openai_base_url,
                timeout=self.settings.openai_timeout,
                max_retries=self.settings.openai_max_retries,
            )
        return self._client

    def model(self, name: str | None = None) -> Model:
        """The Agents SDK model `name` (default OPENAI_MODEL) for OPENAI_API (Responses by
        default, or Chat Completions), on the shared client."""
        name = name or self.settings.openai_model
        inner: Model
        if self.settings.openai_api == "chat_completions":
            inner = OpenAIChatCompletionsModel(name, openai_client=self.client)
        else:
            inner = OpenAIResponsesModel(name, openai_client=self.client)
        return GuardedModel(inner)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def guard_calls(output: list[TResponseOutputItem]) -> None:
    """Replace, in place, tool-call arguments the Agents SDK cannot read (agent/tool_errors)."""
    for item in output:
        if isinstance(item, ResponseFunctionToolCall):
            item.arguments = usable_arguments(item.arguments)


class GuardedModel(Model):
    """The provider's model, its tool calls' arguments checked before the Agents SDK reads
    them: arguments nested too deeply would fail the turn with a traceback; instead the tool
    answers the model with a readable error."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        response = await self.inner.get_response(*args, **kwargs)
        guard_calls(response.output)
        return response

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        async for event in self.inner.stream_response(*args, **kwargs):
            if isinstance(event, ResponseCompletedEvent):
                guard_calls(event.response.output)
            elif isinstance(event, ResponseOutputItemDoneEvent):
                guard_calls([event.item])
            yield event

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    async def close(self) -> None:
        await self.inner.close()


def model_error(
    exc: BaseException, settings: Settings, locale: str = "en"
) -> CustomStreamError | None:
    """A readable error for a failed model call in the user's language (None: not one)."""
    if isinstance(exc, MissingApiKeyError):
        return CustomStreamError(say("model.no_key", locale), allow_retry=False)
    if isinstance(exc, openai.AuthenticationError):
        return CustomStreamError(say("model.auth", locale), allow_retry=False)
    if isinstance(exc, openai.PermissionDeniedError):
        return CustomStreamError(say("model.denied", locale), allow_retry=False)
    if isinstance(exc, openai.RateLimitError):
        wait = exc.response.headers.get("retry-after")
        text = say("model.busy_for", locale, wait=wait) if wait else say("model.busy", locale)
        return CustomStreamError(text, allow_retry=True)
    if isinstance(exc, openai.NotFoundError):
        text = say("model.not_found", locale, model=settings.openai_model)
        return CustomStreamError(text, allow_retry=False)
    if isinstance(exc, openai.APITimeoutError):
        text = say("model.timeout", locale, seconds=settings.openai_timeout)
        return CustomStreamError(text, allow_retry=True)
    if isinstance(exc, openai.APIConnectionError):
        return CustomStreamError(say("model.unreachable", locale), allow_retry=True)
    if isinstance(exc, openai.APIStatusError):
        text = say("model.status", locale, status=exc.status_code)
        return CustomStreamError(text, allow_retry=exc.status_code >= 500)
    if isinstance(exc, openai.OpenAIError | AgentsException | OSError):
        return CustomStreamError(say("model.failed", locale), allow_retry=True)
    return None
