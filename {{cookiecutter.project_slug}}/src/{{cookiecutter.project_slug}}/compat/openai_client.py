"""openai: a client that skips the per-call request transformer and parses stream events fast."""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import Annotated, Any, Union, get_args

import openai
from openai import omit
from openai.resources.chat import AsyncChat, AsyncCompletions
from openai.resources.responses import AsyncResponses
from openai.types.responses import ResponseStreamEvent
from pydantic import Field, TypeAdapter, ValidationError

_EVENT_TYPES: Any = Union[get_args(get_args(ResponseStreamEvent)[0])]  # noqa: UP007
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(Annotated[_EVENT_TYPES, Field(discriminator="type")])


class PassThroughResponses(AsyncResponses):
    """`responses.create` that sends the conversation (`input`) exactly as it is given."""

    async def create(self, **params: Any) -> Any:
        params = send_as_is(params, "tools", absent=omit)
        return await super().create(**send_as_is(params, "input", absent=omit))


class PassThroughCompletions(AsyncCompletions):
    """`chat.completions.create` that sends `messages` exactly as they are given."""

    async def create(self, **params: Any) -> Any:
        params = send_as_is(params, "tools", absent=omit)
        return await super().create(**send_as_is(params, "messages", absent=[]))


class PassThroughChat(AsyncChat):
    @cached_property
    def completions(self) -> AsyncCompletions:
        return PassThroughCompletions(self._client)


class PassThroughOpenAI(openai.AsyncOpenAI):
    """The openai client, minus its per-call rewrite of the conversation and the tools (the
    Agents SDK made them plain JSON already; `extra_body` is sent untouched)."""

    @cached_property
    def responses(self) -> AsyncResponses:
        return PassThroughResponses(self)

    @cached_property
    def chat(self) -> AsyncChat:
        return PassThroughChat(self)

    def _process_response_data(self, *, data: object, cast_to: Any, response: Any) -> Any:
        """Streamed Responses events through a discriminated union (the SDK tries ~60 types
        in turn); what it cannot parse goes the SDK's own way."""
        if cast_to is ResponseStreamEvent:
            with contextlib.suppress(ValidationError):
                return STREAM_EVENT.validate_python(data)
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)


def send_as_is(params: dict[str, Any], field: str, absent: object) -> dict[str, Any]:
    value = params.get(field)
    if not isinstance(value, list):
        return params
    extra_body = {**(params.get("extra_body") or {}), field: value}
    return {**params, field: absent, "extra_body": extra_body}
