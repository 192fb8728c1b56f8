"""A small OpenAI-compatible model server for tests and benchmarks.

It speaks `POST /v1/responses` and `POST /v1/chat/completions`, streaming (SSE) and not, so
the real openai and Agents SDKs do real HTTP and parse real server-sent events, and
`POST /v1/audio/transcriptions` (multipart upload in, `{"text": ...}` out). Behaviour is set
per test: the reply, how many tokens and how fast, the transcript, and faults (HTTP errors
with Retry-After, a connection reset mid-stream, a hang). It records every request it saw,
every upload it transcribed and every stream the client abandoned.

Tool calls are deterministic. When a request offers tools and its newest input item is a user
message containing `@tool NAME {json-args}` (NAME one of the offered tools; the JSON object
is optional), the answer is that function call, streamed event by event as the real API
streams it; several directives make several calls. When the newest input items are tool
outputs, the answer is text quoting them: `Tool said: <output>` (joined by "; " when there
are several). `FakeModel.tool_calls` replaces the directive parser for a test. A request
whose `tool_choice` names a function gets a call to it, whatever its input (as a real model
must), with `FakeModel.forced_arguments`.

Run it alone: `python tests/support/fake_openai.py --port 9999 --tokens 20 --delay 0.01`; it
prints one line when it is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

try:
    from tests.support import fake_outputs as extras
except ModuleNotFoundError:  # run as a script: python tests/support/fake_openai.py
    import fake_outputs as extras  # type: ignore[import-not-found,no-redef]

TITLE_MARKER = "title"
THOUGHTS = ("**Reading the question**\n\nThe user wants a short answer.",)
DIRECTIVE = re.compile(r"@tool\s+([A-Za-z0-9_-]+)")
"""`@tool NAME`, then optionally a JSON object of arguments (names as the API allows them)."""

T = TypeVar("T")


@dataclass
class Fault:
    """One injected failure: an HTTP status, a reset after N tokens, or a hang. With `only_for`,
    it waits in the queue for the request whose newest user message is that text (concurrent
    turns reach the model in any order)."""

    status: int | None = None
    retry_after: str | None = None
    reset_after_tokens: int | None = None
    hang: bool = False
    only_for: str | None = None


@dataclass
class ToolCall:
    """One function call the fake model makes: a tool's name and its arguments as JSON text."""

    name: str
    arguments: str = "{}"


def _text_of(content: Any) -> str:
    """The text of a message content or tool output: a string or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return json.dumps(content)


def _input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses `input` or Chat Completions `messages`, as a list of items."""
    items = body.get("input") or body.get("messages") or []
    if isinstance(items, str):  # Responses accepts a bare string as one user message
        return [{"role": "user", "content": items}]
    return [item for item in items if isinstance(item, dict)]


def _is_tool_output(item: dict[str, Any]) -> bool:
    return item.get("type") == "function_call_output" or item.get("role") == "tool"


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the newest user message in a Responses or Chat Completions request."""
    for message in reversed(_input_items(body)):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def user_texts(body: dict[str, Any]) -> list[str]:
    """The text of every user-role message of a request, oldest first (both APIs), but the
    app's `<APP_CONTEXT>` item (chat/run_input.py) that leads every turn."""
    texts = [_text_of(m.get("content")) for m in _input_items(body) if m.get("role") == "user"]
    return [text for text in texts if not text.startswith("<APP_CONTEXT>")]


def tool_names(body: dict[str, Any]) -> set[str]:
    """The function tools a request offers (Responses and Chat Completions shapes)."""
    names = set()
    for tool in body.get("tools") or []:
        if tool.get("type") != "function":
            continue
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if name:
            names.add(name)
    return names


def tool_outputs(body: dict[str, Any]) -> list[str]:
    """The outputs of the tool calls that end the input, oldest first ([] if it ends otherwise).

    Function-call items between the outputs are skipped: the Agents SDK may interleave them.
    """
    outputs: list[str] = []
    for item in reversed(_input_items(body)):
        if _is_tool_output(item):
            outputs.append(_text_of(item.get("output", item.get("content"))))
        elif item.get("type") != "function_call":
            break
    return outputs[::-1]


def forced_tool(body: dict[str, Any]) -> str | None:
    """The function a request's `tool_choice` names (Responses or Chat Completions shape)."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        return str(name) if name else None
    return None


def directive_tool_calls(body: dict[str, Any]) -> list[ToolCall]:
    """The calls asked for by `@tool NAME {json-args}` in the newest item, if a user message.

    Directives naming a tool the request does not offer are ignored, as are malformed
    arguments (the call then gets `{}`), so a typo gives a text answer rather than an error.
    """
    items = _input_items(body)
    if not items or items[-1].get("role") != "user" or _is_tool_output(items[-1]):
        return []
    text, offered = _text_of(items[-1].get("content")), tool_names(body)
    decoder, calls, position = json.JSONDecoder(), [], 0
    while match := DIRECTIVE.search(text, position):
        position, arguments = match.end(), "{}"
        rest = text[position:].lstrip()
        if rest.startswith("{"):
            try:
                value, used = decoder.raw_decode(rest)
            except json.JSONDecodeError:
                value, used = None, 0
            if isinstance(value, dict):
                arguments = json.dumps(value)
                # skip past the JSON so an "@tool" inside its strings is not a directive
                position = len(text) - len(rest) + used
        if match[1] in offered:
            calls.append(ToolCall(match[1], arguments))
    return calls


def default_transcript(upload: dict[str, Any]) -> str:
    """What the fake hears in an upload: only its size and type, so tests can check both."""
    return f"heard {upload['size']} bytes of {upload['content_type']}"


MAX_PIECES = 256
"""A long answer (64 KiB of quoted tool output) comes in longer pieces, not 16,000 events."""
GATE_SECONDS = 30.0
"""The longest a stream waits at `FakeModel.gate` (a forgotten gate fails a test, not hangs)."""


def _pieces(text: str) -> list[str]:
    """`text` in 4-character pieces, as streamed tokens (at least one, maybe empty); at most
    MAX_PIECES of them."""
    size = max(4, -(-len(text) // MAX_PIECES))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass
class FakeModel:
    """What the fake server answers. Change the fields between (or during) tests."""

    tokens: int = 5
    delay: float = 0.0
    first_token_delay: float = 0.0
    gate: threading.Event | None = None
    """When set, a stream sends its first token and then waits for this event (at most
    GATE_SECONDS): a test does something mid-answer, however slow, then lets it finish."""
    reply: Callable[[dict[str, Any]], str] | None = None
    """The streamed text answer (it wins over quoting tool outputs); None: `tokens` tokens."""
    tool_calls: Callable[[dict[str, Any]], list[ToolCall]] | None = directive_tool_calls
    """The calls to make instead of text ([] or None: answer text). Asked only when the
    request offers tools, streamed or not."""
    forced_arguments: str = "{}"
    """The arguments of a call that a request's `tool_choice` forces."""
    transcript: str | Callable[[dict[str, Any]], str] = default_transcript
    """The transcription's text, or a function of the recorded upload (see `transcriptions`)."""
    annotations: list[dict[str, Any]] = field(default_factory=list)
    """Citations on every streamed text answer (Responses annotation objects; see fake_outputs)."""
    thoughts: list[str] = field(default_factory=lambda: list(THOUGHTS))
    """Reasoning summary parts, streamed when a request asks for reasoning (fake_outputs)."""
    image: bytes = extras.TINY_PNG
    """What `@tool image_generation` generates."""
    faults: list[Fault] = field(default_factory=list)
    fault_every: int = 0
    """When > 0, every Nth streamed request fails with `fault_template` (for soak tests)."""
    fault_template: Fault = field(default_factory=lambda: Fault(status=500))
    requests: list[dict[str, Any]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    """The byte size of each request's body, in the order of `requests`."""
    paths: list[str] = field(default_factory=list)
    transcriptions: list[dict[str, Any]] = field(default_factory=list)
    """One per transcription request: model, filename, content_type, size, response_format."""
    abandoned: int = 0
    """Streams whose client went away before the last event (cancellations)."""
    completed: int = 0
    first_token_at: list[float] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    """Numbers tool-call ids; never reset, so ids stay unique across tests of a session."""

    def reset(self) -> None:
        """Back to defaults, forgetting what was recorded."""
        fresh = FakeModel()
        for name in (
            "tokens",
            "delay",
            "first_token_delay",
            "reply",
            "tool_calls",
            "forced_arguments",
            "transcript",
            "fault_every",
            "fault_template",
            "annotations",
            "thoughts",
            "image",
        ):
            setattr(self, name, getattr(fresh, name))
        if self.gate is not None:
            self.gate.set()  # a stream still held must not outlive its test
            self.gate = None
        self.faults.clear()
        self.requests.clear()
        self.sizes.clear()
        self.paths.clear()
        self.transcriptions.clear()
        self.abandoned = self.completed = 0
        self.first_token_at.clear()

    def calls_for(self, body: dict[str, Any]) -> list[ToolCall]:
        """The function calls that answer `body` ([] for a text answer)."""
        if self.tool_calls is None or not body.get("tools"):
            return []  # a model cannot call tools it was not offered
        if (forced := forced_tool(body)) is not None:
            return [ToolCall(forced, self.forced_arguments)]
        return self.tool_calls(body)

    def answer_for(self, body: dict[str, Any]) -> list[str]:
        """The tokens of the text answer to `body`."""
        outputs = tool_outputs(body)
        if not body.get("stream"):
            if outputs:  # a non-streamed agent run continuing after its tools
                return _pieces(quote_outputs(outputs))
            return ["A", " short", " title"]
        if self.reply is not None:
            return _pieces(self.reply(body))
        if outputs:
            return _pieces(quote_outputs(outputs))
        return [f"tok{i} " for i in range(self.tokens)]

    def new_call_ids(self) -> tuple[str, str]:
        """A fresh (item id, call id) pair for one function call."""
        number = next(self._ids)
        return f"fc_fake_{number}", f"call_fake_{number}"

    def transcript_for(self, upload: dict[str, Any]) -> str:
        return self.transcript if isinstance(self.transcript, str) else self.transcript(upload)

    def next_fault(self, stream: bool, text: str = "") -> Fault | None:
        """The fault for this request (newest user message `text`), if any; faults apply to
        streamed answers only."""
        if not stream:
            return None
        for index, fault in enumerate(self.faults):
            if fault.only_for is None or fault.only_for == text:
                return self.faults.pop(index)
        number = next(self._counter) + 1
        if self.fault_every and number % self.fault_every == 0:
            return self.fault_template
        return None


def quote_outputs(outputs: list[str]) -> str:
    """The text answer after tool calls: it quotes their outputs, so tests can find them."""
    return "; ".join(f"Tool said: {output}" for output in outputs)


@dataclass
class _Call:
    """A function call being answered, with the ids the server gave it."""

    item_id: str
    call_id: str
    name: str
    arguments: str


def _sse(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def _usage_responses() -> dict[str, Any]:
    return {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }


def _response_object(
    response_id: str, model: str, status: str, output: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage_responses() if status == "completed" else None,
    }


def _message(
    item_id: str, text: str, status: str, annotations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": annotations or []}]
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": content if text else [],
    }


def _function_call(call: _Call, status: str) -> dict[str, Any]:
    """A Responses function_call output item; arguments are empty until it is done."""
    return {
        "type": "function_call",
        "id": call.item_id,
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments if status == "completed" else "",
        "status": status,
    }


def _chat_tool_call(call: _Call) -> dict[str, Any]:
    """A Chat Completions tool call, whole (for non-streamed answers)."""
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.call_id, "type": "function", "function": function}


class FakeOpenAI:
    """The ASGI app and, optionally, a uvicorn server for it on 127.0.0.1."""

    def __init__(self, model: FakeModel | None = None) -> None:
        self.model = model or FakeModel()
        self.app = Starlette(
            routes=[
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/audio/transcriptions", self.transcriptions, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
            ]
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeOpenAI:
        """Serve on 127.0.0.1 in a background thread; returns when it accepts connections."""
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,  # cancels hung (Fault(hang=True)) requests on stop
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self, *, at_once: bool = False) -> None:
        """Stop the background server (a thread left running would outlive the tests);
        `at_once`: without waiting for open connections (the end of the session)."""
        if self._server is not None and self._thread is not None:
            self._server.force_exit = at_once
            self._server.should_exit = True
            self._thread.join(timeout=15)
            if self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not stop")

    # --- endpoints -------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _prepare(self, request: Request) -> tuple[dict[str, Any], Fault | None]:
        raw = await request.body()
        body = json.loads(raw)
        self.model.requests.append(body)
        self.model.sizes.append(len(raw))
        self.model.paths.append(request.url.path)
        return body, self.model.next_fault(bool(body.get("stream")), last_user_text(body))

    async def _fault_response(self, fault: Fault) -> Response | None:
        if fault.hang:
            await asyncio.sleep(3600)
        if fault.status is not None:
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            error = {"message": f"fake error {fault.status}", "type": "fake", "code": None}
            return JSONResponse({"error": error}, status_code=fault.status, headers=headers)
        return None

    def _calls(self, body: dict[str, Any]) -> list[_Call]:
        return [
            _Call(*self.model.new_call_ids(), call.name, call.arguments)
            for call in self.model.calls_for(body)
        ]

    async def _paced(self, steps: list[T], fault: Fault | None) -> AsyncIterator[T]:
        """`steps` (text tokens or argument pieces) at the model's pace, failing as told."""
        await asyncio.sleep(self.model.first_token_delay)
        self.model.first_token_at.append(time.perf_counter())
        for index, step in enumerate(steps):
            if fault and fault.reset_after_tokens is not None and index >= fault.reset_after_tokens:
                raise ConnectionResetError("fake reset mid-stream")
            if index and self.model.delay:
                await asyncio.sleep(self.model.delay)
            if index == 1 and (gate := self.model.gate) is not None:
                await asyncio.to_thread(gate.wait, GATE_SECONDS)
            yield step

    def _streaming(self, events: AsyncIterator[bytes]) -> StreamingResponse:
        async def guarded() -> AsyncIterator[bytes]:
            finished = False
            try:
                async for chunk in events:
                    yield chunk
                finished = True
                self.model.completed += 1
            finally:
                if not finished:
                    self.model.abandoned += 1

        return StreamingResponse(guarded(), media_type="text/event-stream")

    async def responses(self, request: Request) -> Response:
        body, fault = await self._prepare(request)
        if fault and (failed := await self._fault_response(fault)) is not None:
            return failed
        model = body.get("model", "unknown")
        number = len(self.model.requests)
        response_id, item_id = f"resp_{number}", f"msg_fake_{number}"
        if calls := self._calls(body):
            if not body.get("stream"):
                output = [_function_call(call, "completed") for call in calls]
                return JSONResponse(_response_object(response_id, model, "completed", output))
            return self._streaming(self._responses_call_events(response_id, model, calls, fault))
        tokens = self.model.answer_for(body)
        if not body.get("stream"):
            message = _message(item_id, "".join(tokens), "completed")
            return JSONResponse(_response_object(response_id, model, "completed", [message]))
        events = self._responses_events(response_id, item_id, model, tokens, fault, body)
        return self._streaming(events)

    def _extras(
        self, body: dict[str, Any], text: str
    ) -> tuple[list[tuple[list[dict[str, Any]], dict[str, Any]]], list[dict[str, Any]]]:
        """The output items before a text answer (reasoning, hosted calls) and its citations."""
        items, annotations = [], list(self.model.annotations)
        number = len(self.model.requests)
        if extras.wants_summary(body) and self.model.thoughts:
            items.append(extras.reasoning_item(f"rs_fake_{number}", 0, self.model.thoughts))
        offered = extras.offered_hosted(body)
        last = next((m for m in reversed(_input_items(body)) if m.get("role") == "user"), {})
        for name in extras.HOSTED.findall(_text_of(last.get("content"))):
            if name in offered:
                item_id = f"{name[:2]}_fake_{number}_{len(items)}"
                items.append(
                    extras.hosted_call(name, item_id, len(items), offered[name], self.model.image)
                )
                if (cited := extras.citation(name, text)) is not None:
                    annotations.append(cited)
        return items, annotations

    async def _responses_events(
        self,
        response_id: str,
        item_id: str,
        model: str,
        tokens: list[str],
        fault: Fault | None,
        body: dict[str, Any],
    ) -> AsyncIterator[bytes]:
        seq = itertools.count()
        extras, annotations = self._extras(body, "".join(tokens))
        index = len(extras)
        base = {"output_index": index, "item_id": item_id, "content_index": 0}
        in_progress = _response_object(response_id, model, "in_progress", [])
        yield _sse(
            {"type": "response.created", "response": in_progress, "sequence_number": next(seq)}
        )
        yield _sse(
            {"type": "response.in_progress", "response": in_progress, "sequence_number": next(seq)}
        )
        for events, _done in extras:
            for event in events:
                yield _sse({**event, "sequence_number": next(seq)})
        yield _sse(
            {
                "type": "response.output_item.added",
                "output_index": index,
                "item": _message(item_id, "", "in_progress"),
                "sequence_number": next(seq),
            }
        )
        empty_part = {"type": "output_text", "text": "", "annotations": []}
        yield _sse(
            {
                "type": "response.content_part.added",
                **base,
                "part": empty_part,
                "sequence_number": next(seq),
            }
        )
        text = ""
        async for token in self._paced(tokens, fault):
            text += token
            yield _sse(
                {
                    "type": "response.output_text.delta",
                    **base,
                    "delta": token,
                    "logprobs": [],
                    "sequence_number": next(seq),
                }
            )
        for number, annotation in enumerate(annotations):
            yield _sse(
                {
                    "type": "response.output_text.annotation.added",
                    **base,
                    "annotation_index": number,
                    "annotation": annotation,
                    "sequence_number": next(seq),
                }
            )
        part = {"type": "output_text", "text": text, "annotations": annotations}
        yield _sse(
            {
                "type": "response.output_text.done",
                **base,
                "text": text,
                "logprobs": [],
                "sequence_number": next(seq),
            }
        )
        yield _sse(
            {
                "type": "response.content_part.done",
                **base,
                "part": part,
                "sequence_number": next(seq),
            }
        )
        done = _message(item_id, text, "completed", annotations)
        yield _sse(
            {
                "type": "response.output_item.done",
                "output_index": index,
                "item": done,
                "sequence_number": next(seq),
            }
        )
        output = [item for _events, item in extras] + [done]
        completed = _response_object(response_id, model, "completed", output)
        yield _sse(
            {"type": "response.completed", "response": completed, "sequence_number": next(seq)}
        )

    async def _responses_call_events(
        self, response_id: str, model: str, calls: list[_Call], fault: Fault | None
    ) -> AsyncIterator[bytes]:
        """One output item per call, in turn: added, argument deltas, arguments done, done."""
        seq = itertools.count()
        in_progress = _response_object(response_id, model, "in_progress", [])
        yield _sse(
            {"type": "response.created", "response": in_progress, "sequence_number": next(seq)}
        )
        yield _sse(
            {"type": "response.in_progress", "response": in_progress, "sequence_number": next(seq)}
        )

        def closing(index: int) -> list[bytes]:
            call = calls[index]
            where = {"output_index": index, "item_id": call.item_id}
            return [
                _sse(
                    {
                        "type": "response.function_call_arguments.done",
                        **where,
                        "arguments": call.arguments,
                        "sequence_number": next(seq),
                    }
                ),
                _sse(
                    {
                        "type": "response.output_item.done",
                        "output_index": index,
                        "item": _function_call(call, "completed"),
                        "sequence_number": next(seq),
                    }
                ),
            ]

        # The pieces of all calls go through one pacing, so delays and resets count them all.
        steps = [(i, piece) for i, call in enumerate(calls) for piece in _pieces(call.arguments)]
        current = -1
        async for index, piece in self._paced(steps, fault):
            if index != current:
                for event in closing(current) if current >= 0 else []:
                    yield event
                current = index
                yield _sse(
                    {
                        "type": "response.output_item.added",
                        "output_index": index,
                        "item": _function_call(calls[index], "in_progress"),
                        "sequence_number": next(seq),
                    }
                )
            yield _sse(
                {
                    "type": "response.function_call_arguments.delta",
                    "output_index": index,
                    "item_id": calls[index].item_id,
                    "delta": piece,
                    "sequence_number": next(seq),
                }
            )
        for event in closing(current):
            yield event
        output = [_function_call(call, "completed") for call in calls]
        completed = _response_object(response_id, model, "completed", output)
        yield _sse(
            {"type": "response.completed", "response": completed, "sequence_number": next(seq)}
        )

    async def chat_completions(self, request: Request) -> Response:
        body, fault = await self._prepare(request)
        if fault and (failed := await self._fault_response(fault)) is not None:
            return failed
        model = body.get("model", "unknown")
        completion_id = f"chatcmpl-{len(self.model.requests)}"
        calls = self._calls(body)
        tokens = [] if calls else self.model.answer_for(body)
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens)}
            if calls:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [_chat_tool_call(call) for call in calls],
                }
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": "tool_calls" if calls else "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if calls:
            events = self._chat_call_events(completion_id, model, calls, fault, include_usage)
        else:
            events = self._chat_events(completion_id, model, tokens, fault, include_usage, body)
        return self._streaming(events)

    def _chat_chunker(self, completion_id: str, model: str) -> Callable[..., bytes]:
        """Makes the SSE lines of one completion's chunks (they share id, model and time)."""
        created = int(time.time())

        def chunk(
            delta: dict[str, Any] | None = None,
            finish: str | None = None,
            usage: dict[str, Any] | None = None,
        ) -> bytes:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage is not None:
                payload["usage"] = usage
            return f"data: {json.dumps(payload)}\n\n".encode()

        return chunk

    async def _chat_events(
        self,
        completion_id: str,
        model: str,
        tokens: list[str],
        fault: Fault | None,
        usage: bool,
        body: dict[str, Any],
    ) -> AsyncIterator[bytes]:
        chunk = self._chat_chunker(completion_id, model)
        yield chunk({"role": "assistant", "content": ""})
        if body.get("reasoning_effort"):  # DeepSeek-style reasoning deltas
            for thought in self.model.thoughts:
                yield chunk({"reasoning_content": thought})
        async for token in self._paced(tokens, fault):
            yield chunk({"content": token})
        if annotations := extras.chat_annotations(self.model.annotations):
            yield chunk({"annotations": annotations})
        yield chunk({}, "stop")
        if usage:
            yield chunk(usage=_usage_chat(len(tokens)))
        yield b"data: [DONE]\n\n"

    async def _chat_call_events(
        self, completion_id: str, model: str, calls: list[_Call], fault: Fault | None, usage: bool
    ) -> AsyncIterator[bytes]:
        """Each call's header (id, name, empty arguments), then its argument pieces."""
        chunk = self._chat_chunker(completion_id, model)
        steps = [(i, piece) for i, call in enumerate(calls) for piece in _pieces(call.arguments)]
        current = -1
        async for index, piece in self._paced(steps, fault):
            if index != current:
                current = index
                header = {
                    "index": index,
                    "id": calls[index].call_id,
                    "type": "function",
                    "function": {"name": calls[index].name, "arguments": ""},
                }
                # The real API names the role, with a null content, in the first chunk only.
                first = {"role": "assistant", "content": None} if index == 0 else {}
                yield chunk({**first, "tool_calls": [header]})
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls")
        if usage:
            yield chunk(usage=_usage_chat(len(steps)))
        yield b"data: [DONE]\n\n"

    async def transcriptions(self, request: Request) -> Response:
        """Speech to text: records the upload, then answers the `transcript` (or a fault)."""
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                error = {"message": "file is required", "type": "invalid_request_error"}
                return JSONResponse({"error": error}, status_code=400)
            size = len(await upload.read())
            response_format = str(form.get("response_format") or "json")
            record = {
                "model": str(form.get("model") or ""),
                "filename": upload.filename,
                "content_type": upload.content_type,
                "size": size,
                "response_format": response_format,
            }
        self.model.transcriptions.append(record)  # not in requests/paths: they pair JSON bodies
        # Uploads are never streamed, but a queued fault is meant for the next call, whatever it is.
        fault = self.model.next_fault(stream=True)
        if fault and (failed := await self._fault_response(fault)) is not None:
            return failed
        text = self.model.transcript_for(record)
        if response_format in ("text", "srt", "vtt"):
            return PlainTextResponse(text)
        return JSONResponse(
            {
                "text": text,
                "usage": {
                    "type": "tokens",
                    "input_tokens": 10,
                    "output_tokens": len(text.split()),
                    "total_tokens": 10 + len(text.split()),
                },
            }
        )


def _usage_chat(completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": 10,
        "completion_tokens": completion_tokens,
        "total_tokens": 10 + completion_tokens,
    }


def main() -> None:
    """Serve the fake model from the command line (for benchmarks and manual tries)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeOpenAI(
        FakeModel(tokens=args.tokens, delay=args.delay, first_token_delay=args.first_token_delay)
    ).start(args.port)
    print(f"fake model ready: OPENAI_BASE_URL={fake.base_url} (Ctrl+C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
