"""The terminal chat, used as a person would: in a real terminal (tmux) against the real app.

The app runs with the loopback fake model; `python -m <package> chat` runs in a tmux pane;
the test types with send-keys and reads the screen with capture-pane.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chatkit.types import WidgetItem
from chatkit.widgets import Card, Text

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.support.app import TEST_AUTH_SECRET, AppServer
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel, Fault, last_user_text
from tests.support.processes import require_tool

PACKAGE = "{{ cookiecutter.project_slug }}"
PROMPT = "you>"
EXITED = "[chat exited with status]"


def chat_env(auth_secret: str = TEST_AUTH_SECRET) -> dict[str, str]:
    """An explicit environment for the chat process: the test server's secret, nothing else."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "AUTH_SECRET": auth_secret,
        "PYTHONUNBUFFERED": "1",
    }


def chat_command(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", PACKAGE, "chat", "--url", url, *args]


class Terminal:
    """A 120x40 tmux pane running one command, on a private tmux server."""

    def __init__(self, tmux: str, socket: Path, command: list[str], cwd: Path) -> None:
        self.base = [tmux, "-S", str(socket)]
        self.submitted = 0
        env_args = [f"{key}={value}" for key, value in chat_env().items()]
        # `env -i` so the chat gets exactly chat_env(), whatever the tmux server inherited; the
        # shell around it prints the exit status on the screen once the chat has ended (its
        # trap keeps Ctrl-C from ending the shell too, while the chat keeps default SIGINT).
        self.tmux(
            "new-session", "-d", "-x", "120", "-y", "40", "-s", "chat", "-c", str(cwd),
            "sh", "-c", f'trap : INT; "$@"; echo "{EXITED} $?"', "sh",
            "env", "-i", *env_args, *command,
            ";", "set-option", "-t", "chat", "remain-on-exit", "on",
        )  # fmt: skip

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return result.stdout

    def screen(self, colours: bool = False) -> str:
        """Everything the pane showed (scrollback included), wrapped lines joined."""
        options = ["-p", "-J", "-S", "-", *(["-e"] if colours else [])]
        return self.tmux("capture-pane", *options, "-t", "chat")

    def type(self, text: str) -> None:
        """Type a line and press Enter."""
        self.tmux("send-keys", "-t", "chat", "-l", text)
        self.tmux("send-keys", "-t", "chat", "Enter")
        self.submitted += 1

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "chat", *keys)

    def wait_for(self, check: Callable[[str], bool], seconds: float = 10.0) -> str:
        deadline = time.monotonic() + seconds
        while True:
            screen = self.screen()
            if check(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the screen shows:\n{screen}")
            time.sleep(0.05)

    def wait_text(self, text: str, seconds: float = 10.0) -> str:
        return self.wait_for(lambda screen: text in screen, seconds)

    def wait_prompt(self) -> str:
        """Wait until the chat is done with every line typed and shows an empty prompt."""

        def ready(screen: str) -> bool:
            lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
            prompts = [line for line in lines if line.startswith(PROMPT)]
            return len(prompts) > self.submitted and lines[-1] == PROMPT

        return self.wait_for(ready)

    def exit_status(self) -> int:
        """Wait for the chat to end; its exit status."""
        screen = self.wait_text(EXITED)
        return int(screen.split(EXITED)[1].split()[0])


async def say(term: Terminal, line: str) -> str:
    """Type a line, wait until the chat is done with it; the screen."""
    term.type(line)
    return await asyncio.to_thread(term.wait_prompt)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    tmux = require_tool("tmux", "tmux")
    socket = tmp_path / "tmux.sock"
    opened: list[Terminal] = []

    def open_terminal(*command: str) -> Terminal:
        term = Terminal(tmux, socket, list(command), tmp_path)
        opened.append(term)
        return term

    yield open_terminal
    if opened:
        subprocess.run([tmux, "-S", str(socket), "kill-server"], capture_output=True, timeout=10)


def run_chat_process(
    url: str, *args: str, auth_secret: str = TEST_AUTH_SECRET, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chat_command(url, *args),
        env=chat_env(auth_secret),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_chat_streams_lists_switches_and_exits(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    terminal: Callable[..., Terminal],
) -> None:
    user = f"tmux-{uuid.uuid4().hex[:8]}"
    fake_model.reply = lambda body: f"echo: {last_user_text(body)} and a longer tail"
    fake_model.delay = 0.15
    term = terminal(*chat_command(app_server.url, "--user", user))
    screen = await asyncio.to_thread(term.wait_prompt)
    assert f"Connected to {app_server.url} as {user}" in screen

    term.type("hello there")
    # Mid-stream the first words are on screen and the rest is not yet: it streams.
    partial = await asyncio.to_thread(term.wait_text, "bot> echo")
    assert "and a longer tail" not in partial
    screen = await asyncio.to_thread(term.wait_prompt)
    assert "bot> echo: hello there and a longer tail" in screen

    # From here on, each line is typed once the prompt is back, as a person would.
    fake_model.delay = 0
    screen = await say(term, "/threads")
    (listed,) = [line for line in screen.splitlines() if "current" in line]
    assert listed.strip().startswith("1. A short title ")

    screen = await say(term, "and again")
    assert "bot> echo: and again and a longer tail" in screen
    client = client_for(user)
    threads = (await client.request("threads.list", {}))["data"]
    assert len(threads) == 1, "the second message went to the same thread"

    await say(term, "/new")
    assert "bot> echo: second thread" in await say(term, "second thread")
    assert "  2. A short title" in await say(term, "/threads")
    screen = await say(term, "/switch 2")
    history = screen[screen.rindex("Now in thread") :]
    assert "  you: hello there" in history and "  bot: echo: and again" in history

    fake_model.faults.append(Fault(status=500))
    screen = await say(term, "this one fails")
    (error_line,) = [line for line in screen.splitlines() if "(500)" in line]
    assert error_line.startswith("error: The model provider answered with an error (500).")
    assert "\x1b[31m" in term.screen(colours=True) or "\x1b[1;31m" in term.screen(colours=True)
    assert "Traceback" not in screen

    assert "unknown command /nonsense; try /help" in await say(term, "/nonsense")
    term.keys("C-d")
    assert await asyncio.to_thread(term.exit_status) == 0


async def add_widget(store: PostgresStore, user: str, thread_id: str, copy_text: str) -> None:
    """A widget item between the thread's first message and its answer, as a tool shows one."""
    context = make_context(user)
    page = await store.load_thread_items(thread_id, None, 2, "asc", context)
    created_at = page.data[0].created_at + (page.data[1].created_at - page.data[0].created_at) / 2
    card = Card(children=[Text(value=copy_text)])
    widget = WidgetItem(
        id=f"wd_{uuid.uuid4().hex}", thread_id=thread_id, created_at=created_at, widget=card,
        copy_text=copy_text,
    )  # fmt: skip
    await store.add_thread_item(thread_id, widget, context)


@pytest.mark.parametrize("when", ["at the prompt", "while the answer streams"])
async def test_resume_a_thread_then_ctrl_c_exits_cleanly(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    terminal: Callable[..., Terminal],
    store: PostgresStore,
    when: str,
) -> None:
    """Resuming shows the thread's newest items, the widgets a tool showed included."""
    user = f"tmux-{uuid.uuid4().hex[:8]}"
    events = await client_for(user).send("remember me")
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    await add_widget(store, user, thread_id, "A card between the two messages")
    term = terminal(*chat_command(app_server.url, "--user", user, "--thread", thread_id))
    screen = await asyncio.to_thread(term.wait_prompt)
    assert f"Now in thread A short title {thread_id}" in screen
    history = [line.strip() for line in screen.splitlines()]
    you, card = (
        history.index("you: remember me"),
        history.index("[widget] A card between the two messages"),
    )
    assert you < card and history[card + 1].startswith("bot: "), screen
    if when == "while the answer streams":
        fake_model.delay = 0.5
        term.type("a slow one")
        await asyncio.to_thread(term.wait_text, "bot> tok0")
    term.keys("C-c")
    assert await asyncio.to_thread(term.exit_status) == 0
    assert "Traceback" not in term.screen()


@pytest.mark.parametrize(
    "case, expected",
    [
        ("server down", "cannot reach the app at http://127.0.0.1:"),
        ("wrong secret", "the app refused the token (HTTP 401: bad signature)"),
        ("unknown thread", "no thread thr_missing for user"),
    ],
)
def test_failures_are_one_readable_line(
    app_server: AppServer, tmp_path: Path, case: str, expected: str
) -> None:
    url, args, secret = app_server.url, ["--user", "someone"], TEST_AUTH_SECRET
    if case == "server down":
        url = "http://127.0.0.1:9"  # the discard port: nothing listens there
    elif case == "wrong secret":
        secret = "Qz8vR2mW5kT9pL4xN7cB1hJ6dF3sG0aE-another-strong-one"  # not the app's
    else:
        args += ["--thread", "thr_missing"]
    result = run_chat_process(url, *args, auth_secret=secret, cwd=tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output
    (error,) = [line for line in output.splitlines() if line.startswith("error:")]
    assert expected in error
    assert "Traceback" not in output
