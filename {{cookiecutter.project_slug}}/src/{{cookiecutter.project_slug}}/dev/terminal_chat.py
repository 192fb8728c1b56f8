"""`python -m <package> chat`: chat with the running app in the terminal over the ChatKit
protocol, as a development token's user (slash commands: /help)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import HTML
from prompt_toolkit.history import InMemoryHistory
from rich.console import Console
from rich.markup import escape

from ..context import create_token
from ..settings import Settings
from .client import JSON, ChatKitClient, ChatKitHTTPError, assistant_text, user_input

HELP = """\
[bold]Type a message[/] and press Enter: the answer streams in as it is written.
  [cyan]/threads[/]       list your threads (newest first)
  [cyan]/switch N|ID[/]   continue thread number N of the list, or the thread with that id
  [cyan]/new[/]           start a new thread with the next message
  [cyan]/help[/]          show this help
  [cyan]/quit[/]          leave (Ctrl-D and Ctrl-C work too)"""
TEXT_DELTA = "assistant_message.content_part.text_delta"
HISTORY_SHOWN = 6


class ChatError(Exception):
    """A failure worth one readable line (server down, refused token, unknown thread)."""


def describe_http_error(exc: Exception, url: str) -> str:
    """One readable line for a failed HTTP exchange with the app."""
    if isinstance(exc, ChatKitHTTPError):
        if exc.status == 401:
            return (
                f"the app refused the token ({exc}); "
                "is AUTH_SECRET the same for this command and the server?"
            )
        return f"the app answered {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return f"the app at {url} did not answer in time"
    return f"cannot reach the app at {url} ({type(exc).__name__}); is it running (serve)?"


class TerminalChat:
    """The conversation state and the commands; input and output are injected."""

    def __init__(self, client: ChatKitClient, console: Console, url: str, user_id: str) -> None:
        self.client = client
        self.console = console
        self.url = url
        self.user_id = user_id
        self.thread_id: str | None = None
        self.listed: list[JSON] = []

    async def call(self, action: Awaitable[Any]) -> Any:
        """Await an exchange with the app; HTTP failures become ChatError."""
        try:
            return await action
        except (ChatKitHTTPError, httpx.HTTPError) as exc:
            raise ChatError(describe_http_error(exc, self.url)) from exc

    async def connect(self, thread_id: str | None) -> None:
        """Check the app answers and accepts the token; resume `thread_id` when given."""
        await self.call(self.client.request("threads.list", {"limit": 1}))
        self.console.print(
            f"Connected to [bold]{escape(self.url)}[/] as [bold]{escape(self.user_id)}[/]. "
            "Type a message, or /help."
        )
        if thread_id:
            await self.switch(thread_id)

    async def handle(self, line: str) -> bool:
        """Act on one input line; False when the user wants to leave."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            await self.send(line)
            return True
        command, _, argument = line.partition(" ")
        handlers: dict[str, Callable[[], Awaitable[None]]] = {
            "/threads": self.list_threads,
            "/new": self.new_thread,
            "/help": self.show_help,
            "/switch": lambda: self.switch(argument.strip()),
        }
        if command in ("/quit", "/exit"):
            return False
        handler = handlers.get(command)
        if handler is None:
            self.console.print(f"[yellow]unknown command {escape(command)}; try /help[/]")
            return True
        try:
            await handler()
        except ChatError as exc:
            self.error(str(exc))
        return True

    def error(self, message: str) -> None:
        self.console.print(f"[bold red]error:[/] [red]{escape(message)}[/]")

    async def show_help(self) -> None:
        self.console.print(HELP)

    async def new_thread(self) -> None:
        self.thread_id = None
        self.console.print("[dim]New thread: your next message starts it.[/]")

    async def list_threads(self) -> None:
        """/threads: number the user's threads, newest first."""
        page = await self.call(self.client.request("threads.list", {"limit": 20, "order": "desc"}))
        self.listed = list(page.get("data", []))
        if not self.listed:
            self.console.print("[dim]No threads yet: type a message to start one.[/]")
            return
        for number, thread in enumerate(self.listed, start=1):
            title = escape(thread.get("title") or "(untitled)")
            marker = " [green]← current[/]" if thread["id"] == self.thread_id else ""
            self.console.print(f"{number:>3}. {title} [dim]{escape(thread['id'])}[/]{marker}")

    async def switch(self, target: str) -> None:
        """/switch N|ID: continue a listed thread by number, or any of the user's by id."""
        if not target:
            raise ChatError("which thread? /switch N (see /threads) or /switch THREAD_ID")
        thread_id = target
        if target.isdigit():
            if not 1 <= int(target) <= len(self.listed):
                raise ChatError(f"no thread number {target}; run /threads first")
            thread_id = self.listed[int(target) - 1]["id"]
        try:
            thread = await self.call(
                self.client.request("threads.get_by_id", {"thread_id": thread_id})
            )
        except ChatError as exc:
            cause = exc.__cause__
            if isinstance(cause, ChatKitHTTPError) and cause.status == 404:
                raise ChatError(f"no thread {thread_id} for user {self.user_id}") from cause
            raise
        self.thread_id = thread["id"]
        title = escape(thread.get("title") or "(untitled)")
        self.console.print(f"[dim]Now in thread[/] [bold]{title}[/] [dim]{escape(thread['id'])}[/]")
        params = {"thread_id": thread["id"], "limit": HISTORY_SHOWN, "order": "desc"}
        newest = await self.call(self.client.request("items.list", params))
        self.show_history(list(reversed(newest.get("data", []))))

    def show_history(self, items: list[JSON]) -> None:
        """The thread's newest items, so the user knows where they are (widgets included: a
        tool's card may be all there is between two messages)."""
        for item in items:
            if item["type"] == "user_message":
                self.console.print(f"  [dim]you:[/] {escape(assistant_text(item))}")
            elif item["type"] == "assistant_message":
                self.console.print(f"  [dim]bot:[/] {escape(assistant_text(item))}")
            else:
                self.show_item(item, indent="  ")

    async def send(self, text: str) -> None:
        """Send a message and print the answer as it streams in."""
        if self.thread_id is None:
            events = self.client.stream("threads.create", {"input": user_input(text)})
        else:
            params = {"thread_id": self.thread_id, "input": user_input(text)}
            events = self.client.stream("threads.add_user_message", params)
        streaming = False
        try:
            async for event in events:
                streaming = self.render(event, streaming)
        except (ChatKitHTTPError, httpx.HTTPError) as exc:
            if streaming:
                self.console.print()
            self.error(describe_http_error(exc, self.url))
            return
        if streaming:
            self.console.print()

    def render(self, event: JSON, streaming: bool) -> bool:
        """Print what one event shows; returns whether an answer line is open."""
        kind = event.get("type")
        if kind == "thread.created":
            self.thread_id = event["thread"]["id"]
        elif kind == "thread.item.updated" and event["update"].get("type") == TEXT_DELTA:
            if not streaming:
                self.console.print("[cyan]bot>[/] ", end="")
            self.console.print(event["update"]["delta"], end="", markup=False, highlight=False)
            return True
        elif kind == "thread.item.done" and event["item"]["type"] == "assistant_message":
            if not streaming:  # nothing streamed (e.g. a non-streaming model): show it whole
                self.console.print(f"[cyan]bot>[/] {escape(assistant_text(event['item']))}")
            else:
                self.console.print()
            return False
        elif kind == "error":
            if streaming:
                self.console.print()
            message = event.get("message") or f"the answer failed ({event.get('code')})"
            retry = " You can send it again." if event.get("allow_retry") else ""
            self.error(f"{message}{retry}")
            return False
        elif kind == "notice":
            self.console.print(f"[yellow]{escape(event.get('message', ''))}[/]")
        elif kind == "progress_update":
            self.console.print(f"[dim]… {escape(event.get('text', ''))}[/]")
        elif kind in ("thread.item.done", "thread.item.replaced"):
            self.show_item(event["item"])
        return streaming

    def show_item(self, item: JSON, indent: str = "") -> None:
        """A one-line stand-in for what the terminal cannot draw (widgets, client tools)."""
        if item["type"] == "widget":
            text = escape(item.get("copy_text") or "")
            self.console.print(f"{indent}[magenta]\\[widget][/] {text}")
        elif item["type"] == "client_tool_call" and item.get("status") == "pending":
            self.console.print(
                f"{indent}[dim](the app asked the browser to run {escape(item['name'])}; "
                "the terminal chat cannot)[/]"
            )


async def chat_loop(chat: TerminalChat, thread_id: str | None) -> int:
    """Connect, then read and handle lines until /quit, Ctrl-D or Ctrl-C."""
    try:
        await chat.connect(thread_id)
    except ChatError as exc:
        chat.error(str(exc))
        return 1
    session: PromptSession[str] = PromptSession(history=InMemoryHistory())
    while True:
        try:
            line = await session.prompt_async(HTML("<b><ansigreen>you&gt;</ansigreen></b> "))
        except (EOFError, KeyboardInterrupt):
            return 0
        if not await chat.handle(line):
            return 0


async def run_async(
    url: str, token: str, user_id: str, thread_id: str | None, console: Console
) -> int:
    """The terminal chat against the app at `url`, as `user_id`."""
    async with ChatKitClient(url, token) as client:
        return await chat_loop(TerminalChat(client, console, url, user_id), thread_id)


def run_chat(settings: Settings, *, url: str, user_id: str, thread_id: str | None = None) -> int:
    """Entry point of the `chat` command; returns the exit code (0 on Ctrl-C/Ctrl-D)."""
    console = Console(highlight=False)
    try:
        token = create_token(user_id, settings=settings)
        return asyncio.run(run_async(url.rstrip("/"), token, user_id, thread_id, console))
    except KeyboardInterrupt:  # Ctrl-C while an answer streams
        console.print()
        return 0
