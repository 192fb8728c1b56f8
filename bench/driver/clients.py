"""The clients: the fake model's control routes and direct calls, and ChatKit clients sending
turns (one conversation per worker, as many workers as the load asks)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from driver import generated
from driver.config import TEXT_DELTA, TOOL, TOOL_ARGUMENTS, TOOL_ASK, TOOL_OUTPUT
from driver.processes import Proc
from driver.stats import Turn


class FakeControl:
    """Talks to bench/fake_model.py's control routes and measures the model directly."""

    def __init__(self, base_url: str, model: str) -> None:
        self.base_url = base_url
        self.model = model
        self.http = httpx.AsyncClient(timeout=10)
        self.client = openai.AsyncOpenAI(
            base_url=f"{base_url}/v1",
            api_key="x",
            max_retries=0,
            http_client=httpx.AsyncClient(
                timeout=60, limits=httpx.Limits(max_connections=512, max_keepalive_connections=512)
            ),
        )

    async def configure(self, tokens: int, delay: float, first: float) -> None:
        """The shape of the model's next answers."""
        body = {"tokens": tokens, "delay": delay, "first_token_delay": first}
        (await self.http.post(f"{self.base_url}/bench/config", json=body)).raise_for_status()

    async def forget(self) -> None:
        """Drop the requests the fake recorded so far."""
        (await self.http.delete(f"{self.base_url}/bench/requests")).raise_for_status()

    async def last_requests(self, count: int) -> list[dict[str, Any]]:
        """The last `count` request bodies the fake received."""
        rsp = await self.http.get(f"{self.base_url}/bench/requests", params={"last": count})
        rsp.raise_for_status()
        bodies: list[dict[str, Any]] = rsp.json()["last"]
        return bodies

    async def direct_turn(
        self, items: list[Any] | None = None, tools: tuple[Any, ...] = ()
    ) -> Turn:
        """One streamed Responses call straight to the fake (the model's own timings)."""
        started = time.perf_counter()
        turn = Turn(ok=False, started=started)
        try:
            stream = await self.client.responses.create(
                model=self.model,
                input=items or [{"role": "user", "content": "direct"}],
                tools=tools,
                stream=True,
            )
            async for event in stream:
                if turn.ttft is None and event.type == "response.output_text.delta":
                    turn.ttft = time.perf_counter() - started
                if event.type == "response.completed":
                    turn.ok = True
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            turn.error = type(exc).__name__
        turn.total = time.perf_counter() - started
        return turn

    async def direct_tool_turn(self) -> Turn:
        """A tool turn's two model calls straight to the fake: the get_time call, the answer."""
        ask = {"role": "user", "content": TOOL_ASK}
        schema = {"type": "object", "properties": {"timezone": {"type": "string"}}}
        tool = {"type": "function", "name": TOOL, "parameters": schema, "strict": False}
        call = await self.direct_turn([ask], (tool,))
        arguments = json.dumps(TOOL_ARGUMENTS)
        done = {"type": "function_call", "call_id": "c1", "name": TOOL, "arguments": arguments}
        output = {"type": "function_call_output", "call_id": "c1", "output": TOOL_OUTPUT}
        answer = await self.direct_turn([ask, done, output], (tool,))
        answer.ok = answer.ok and call.ok
        answer.total += call.total
        return answer

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self.http.aclose()
        await self.client.close()


@dataclass
class Service:
    """A ChatKit service under test."""

    name: str
    url: str
    proc: Proc
    dbname: str
    token: Callable[[str], str] | None = None
    """How its users sign in: user id -> bearer token (None: HS256 with AUTH_SECRET)."""


class Driver:
    """Sends ChatKit turns with one shared HTTP connection pool."""

    def __init__(self, slug: str, secret: str) -> None:
        self.client_cls, self.http_error = generated.chatkit_client(slug)
        self.secret = secret
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(60, connect=10),
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=1024),
        )
        self._tokens: dict[str, str] = {}

    def token(self, user: str, service: Service | None = None) -> str:
        """A bearer token for `user`: the service's own kind, else HS256 with AUTH_SECRET."""
        if service is not None and service.token is not None:
            return service.token(user)
        if user not in self._tokens:
            import jwt

            now = int(time.time())
            claims = {"sub": user, "iat": now, "exp": now + 3600}
            self._tokens[user] = jwt.encode(claims, self.secret, algorithm="HS256")
        return self._tokens[user]

    async def turn(self, service: Service, user: str, text: str, thread_id: str | None) -> Turn:
        """Send one message (a new thread when `thread_id` is None) and time its answer."""
        client = self.client_cls(service.url, self.token(user, service), http=self.http)
        if thread_id is None:
            request = ("threads.create", {"input": _user_input(text)})
        else:
            request = (
                "threads.add_user_message",
                {"thread_id": thread_id, "input": _user_input(text)},
            )
        started = time.perf_counter()
        turn = Turn(ok=False, started=started, thread_id=thread_id)
        answered = False
        try:
            async for event in client.stream(*request):
                kind = event.get("type")
                if kind == "thread.created":
                    turn.thread_id = event["thread"]["id"]
                elif kind == "thread.item.updated":
                    if turn.ttft is None and event["update"]["type"] == TEXT_DELTA:
                        turn.ttft = time.perf_counter() - started
                elif kind == "thread.item.done":
                    turn.shown.append(event["item"]["type"])
                    if event["item"]["type"] == "assistant_message":
                        answered = True
                        turn.text = "".join(p.get("text", "") for p in event["item"]["content"])
                elif kind == "progress_update":
                    turn.shown.append(kind)
                elif kind == "error":
                    turn.error = f"error event: {event.get('message') or event.get('code')}"
        except self.http_error as exc:
            turn.error = f"HTTP {exc.status}"
        except (httpx.HTTPError, OSError, ValueError) as exc:
            turn.error = type(exc).__name__
        turn.total = time.perf_counter() - started
        turn.ok = answered and turn.error is None
        if not answered and turn.error is None:
            turn.error = "no answer"
        return turn

    async def get_thread(self, service: Service, user: str, thread_id: str) -> dict[str, Any]:
        """threads.get_by_id through `service`."""
        client = self.client_cls(service.url, self.token(user, service), http=self.http)
        thread: dict[str, Any] = await client.request("threads.get_by_id", {"thread_id": thread_id})
        return thread

    async def list_items(self, service: Service, user: str, thread_id: str) -> list[Any]:
        """The thread's stored items (up to 100, oldest first) through `service`."""
        client = self.client_cls(service.url, self.token(user, service), http=self.http)
        params = {"thread_id": thread_id, "limit": 100, "order": "asc"}
        page: dict[str, Any] = await client.request("items.list", params)
        items: list[Any] = page["data"]
        return items

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()


def _user_input(text: str) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
    }


async def run_load(
    work: Callable[[int, float], Awaitable[list[Turn]]],
    concurrency: int,
    seconds: float,
    grace: float = 30,
) -> tuple[list[Turn], float, int]:
    """Run `concurrency` workers for about `seconds`; returns turns, wall time, stragglers.

    Each worker repeats `work(worker, deadline)` (one conversation, which sends no new
    message after the deadline) until the time is up; turns still running `grace` seconds
    after that are cancelled and counted as errors.
    """
    deadline = time.perf_counter() + seconds
    turns: list[Turn] = []

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            turns.extend(await work(index, deadline))

    started = time.perf_counter()
    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    _done, pending = await asyncio.wait(tasks, timeout=seconds + grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return turns, time.perf_counter() - started, len(pending)


def conversation(
    driver: Driver, service: Service, turns: int, prefix: str, think: float = 0.0, ask: str = ""
) -> Callable[[int, float], Awaitable[list[Turn]]]:
    """A worker's conversation: a new thread, then up to `turns - 1` more messages.

    Each message is `<prefix> message <n>`, then `ask` (TOOL_ASK makes every turn a tool turn).

    With `think` > 0 the user pauses a random 0..`think` seconds before each message, as
    people do: arrivals spread out instead of every conversation sending in lockstep (which
    would measure the queue behind a synchronised burst, not the service).
    """

    async def run(worker: int, deadline: float = float("inf")) -> list[Turn]:
        user = f"{prefix}-user-{worker}"
        done: list[Turn] = []
        thread_id: str | None = None
        for number in range(turns):
            if think:
                await asyncio.sleep(random.uniform(0, think))
            turn = await driver.turn(service, user, f"{prefix} message {number}{ask}", thread_id)
            done.append(turn)
            if not turn.ok or turn.thread_id is None or time.perf_counter() > deadline:
                break
            thread_id = turn.thread_id
        return done

    return run
