"""A small OpenAI-compatible model server for tests and benchmarks.

It speaks `POST /v1/responses` and `POST /v1/chat/completions`, streaming (SSE) and not, so
the real openai and Agents SDKs do real HTTP and parse real server-sent events. Behaviour is
set per test: the reply, how many tokens and how fast, and faults (HTTP errors with
Retry-After, a connection reset mid-stream, a hang). It records every request it saw and
every stream the client abandoned.

Run it alone: `python tests/fake_openai.py --port 9999 --tokens 20 --delay 0.01`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

TITLE_MARKER = "title"


@dataclass
class Fault:
    """One injected failure: an HTTP status, a reset after N tokens, or a hang."""

    status: int | None = None
    retry_after: str | None = None
    reset_after_tokens: int | None = None
    hang: bool = False


@dataclass
class FakeModel:
    """What the fake server answers. Change the fields between (or during) tests."""

    tokens: int = 5
    delay: float = 0.0
    first_token_delay: float = 0.0
    reply: Callable[[dict[str, Any]], str] | None = None
    faults: list[Fault] = field(default_factory=list)
    fault_every: int = 0
    """When > 0, every Nth streamed request fails with `fault_template` (for soak tests)."""
    fault_template: Fault = field(default_factory=lambda: Fault(status=500))
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    abandoned: int = 0
    """Streams whose client went away before the last event (cancellations)."""
    completed: int = 0
    first_token_at: list[float] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def reset(self) -> None:
        """Back to defaults, forgetting what was recorded."""
        fresh = FakeModel()
        for name in ("tokens", "delay", "first_token_delay", "reply", "fault_every"):
            setattr(self, name, getattr(fresh, name))
        self.faults.clear()
        self.requests.clear()
        self.paths.clear()
        self.abandoned = self.completed = 0
        self.first_token_at.clear()

    def answer_for(self, body: dict[str, Any]) -> list[str]:
        """The tokens of the answer to `body`."""
        if not body.get("stream"):
            return ["A", " short", " title"]
        if self.reply is not None:
            text = self.reply(body)
            return [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
        return [f"tok{i} " for i in range(self.tokens)]

    def next_fault(self, stream: bool) -> Fault | None:
        """The fault for this request, if any (faults apply to streamed answers only)."""
        if not stream:
            return None
        if self.faults:
            return self.faults.pop(0)
        number = next(self._counter) + 1
        if self.fault_every and number % self.fault_every == 0:
            return self.fault_template
        return None


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the newest user message in a Responses or Chat Completions request."""
    messages = body.get("input") or body.get("messages") or []
    if isinstance(messages, str):
        return messages
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


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


def _message(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}] if text else [],
    }


class FakeOpenAI:
    """The ASGI app and, optionally, a uvicorn server for it on 127.0.0.1."""

    def __init__(self, model: FakeModel | None = None) -> None:
        self.model = model or FakeModel()
        self.app = Starlette(
            routes=[
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
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

    def stop(self) -> None:
        """Stop the background server (a thread left running would outlive the tests)."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            if self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not stop")

    # --- endpoints -------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _prepare(self, request: Request) -> tuple[dict[str, Any], Fault | None]:
        body = await request.json()
        self.model.requests.append(body)
        self.model.paths.append(request.url.path)
        return body, self.model.next_fault(bool(body.get("stream")))

    async def _fault_response(self, fault: Fault) -> Response | None:
        if fault.hang:
            await asyncio.sleep(3600)
        if fault.status is not None:
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            error = {"message": f"fake error {fault.status}", "type": "fake", "code": None}
            return JSONResponse({"error": error}, status_code=fault.status, headers=headers)
        return None

    async def _tokens(self, tokens: list[str], fault: Fault | None) -> AsyncIterator[str]:
        await asyncio.sleep(self.model.first_token_delay)
        self.model.first_token_at.append(time.perf_counter())
        for index, token in enumerate(tokens):
            if fault and fault.reset_after_tokens is not None and index >= fault.reset_after_tokens:
                raise ConnectionResetError("fake reset mid-stream")
            if index and self.model.delay:
                await asyncio.sleep(self.model.delay)
            yield token

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
        tokens = self.model.answer_for(body)
        if not body.get("stream"):
            message = _message(item_id, "".join(tokens), "completed")
            return JSONResponse(_response_object(response_id, model, "completed", [message]))
        return self._streaming(self._responses_events(response_id, item_id, model, tokens, fault))

    async def _responses_events(
        self, response_id: str, item_id: str, model: str, tokens: list[str], fault: Fault | None
    ) -> AsyncIterator[bytes]:
        seq = itertools.count()
        base = {"output_index": 0, "item_id": item_id, "content_index": 0}
        in_progress = _response_object(response_id, model, "in_progress", [])
        yield _sse(
            {"type": "response.created", "response": in_progress, "sequence_number": next(seq)}
        )
        yield _sse(
            {"type": "response.in_progress", "response": in_progress, "sequence_number": next(seq)}
        )
        yield _sse(
            {
                "type": "response.output_item.added",
                "output_index": 0,
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
        async for token in self._tokens(tokens, fault):
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
        part = {"type": "output_text", "text": text, "annotations": []}
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
        done = _message(item_id, text, "completed")
        yield _sse(
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": done,
                "sequence_number": next(seq),
            }
        )
        completed = _response_object(response_id, model, "completed", [done])
        yield _sse(
            {"type": "response.completed", "response": completed, "sequence_number": next(seq)}
        )

    async def chat_completions(self, request: Request) -> Response:
        body, fault = await self._prepare(request)
        if fault and (failed := await self._fault_response(fault)) is not None:
            return failed
        model = body.get("model", "unknown")
        completion_id = f"chatcmpl-{len(self.model.requests)}"
        tokens = self.model.answer_for(body)
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(tokens)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
                }
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return self._streaming(
            self._chat_events(completion_id, model, tokens, fault, include_usage)
        )

    async def _chat_events(
        self, completion_id: str, model: str, tokens: list[str], fault: Fault | None, usage: bool
    ) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        async for token in self._tokens(tokens, fault):
            yield chunk({"content": token})
        yield chunk({}, "stop")
        if usage:
            final = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": len(tokens),
                    "total_tokens": 10 + len(tokens),
                },
            }
            yield f"data: {json.dumps(final)}\n\n".encode()
        yield b"data: [DONE]\n\n"


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
    )
    uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
