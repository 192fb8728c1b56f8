"""A small async client for the ChatKit protocol (the terminal chat and the tests use it):
`async with ChatKitClient(url, token) as client: await client.send("Hi")`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

JSON = dict[str, Any]


class ChatKitHTTPError(Exception):
    """The server answered with an HTTP error (its JSON error body is in `body`)."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {message or body}")
        self.status = status
        self.body = body


def user_input(
    text: str, *, attachments: list[str] | None = None, options: JSON | None = None
) -> JSON:
    """The `input` of threads.create / threads.add_user_message for a plain text message
    (`options`: the composer's picks, e.g. `{"model": "gpt-4.1"}`)."""
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": attachments or [],
        "inference_options": options or {},
    }


def assistant_text(item: JSON) -> str:
    """The text of an assistant_message item."""
    return "".join(part.get("text", "") for part in item.get("content", []))


class ChatKitClient:
    """Talks to `POST /chatkit` with a bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 120.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chatkit"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None

    async def __aenter__(self) -> ChatKitClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections (if this client opened them)."""
        if self._owns_http:
            await self.http.aclose()

    async def request(self, type_: str, params: JSON | None = None) -> Any:
        """A non-streaming request; returns the decoded JSON answer."""
        response = await self.http.post(
            self.url, json={"type": type_, "params": params or {}}, headers=self.headers
        )
        if response.status_code >= 400:
            raise ChatKitHTTPError(response.status_code, _json_or_text(response))
        return response.json()

    async def stream(self, type_: str, params: JSON) -> AsyncIterator[JSON]:
        """A streaming request; yields each server-sent event as a dict."""
        payload = {"type": type_, "params": params}
        async with self.http.stream("POST", self.url, json=payload, headers=self.headers) as rsp:
            if rsp.status_code >= 400:
                await rsp.aread()
                raise ChatKitHTTPError(rsp.status_code, _json_or_text(rsp))
            async for line in rsp.aiter_lines():
                if line.startswith("data: "):
                    yield json.loads(line[len("data: ") :])

    async def send(
        self,
        text: str,
        thread_id: str | None = None,
        *,
        attachments: list[str] | None = None,
        options: JSON | None = None,
        message: JSON | None = None,
    ) -> list[JSON]:
        """Send a message (new thread when `thread_id` is None); returns all events.

        `message` replaces the whole `input` (tags, quoted text, ...)."""
        message = message or user_input(text, attachments=attachments, options=options)
        if thread_id is None:
            events = self.stream("threads.create", {"input": message})
        else:
            events = self.stream(
                "threads.add_user_message", {"thread_id": thread_id, "input": message}
            )
        return [event async for event in events]


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
