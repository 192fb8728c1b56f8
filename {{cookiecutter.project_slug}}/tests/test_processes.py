"""`serve` as its own process (tests/support/processes.py): on `--port 0`, and with its output shown
when it fails."""

from __future__ import annotations

import os
import socket
import sys

import httpx
import pytest

from tests.support.app import TEST_AUTH_SECRET
from tests.support.processes import ServerProcess

PACKAGE = "{{ cookiecutter.project_slug }}"


def serve_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    env.update(DATABASE_URL=database_url, AUTH_SECRET=TEST_AUTH_SECRET, LOG_LEVEL="INFO")
    return env


def test_serve_on_port_0_listens_where_it_says(database_url: str) -> None:
    """No port picked in advance (another process could take it first): the OS picks one
    when uvicorn binds, and its startup line names it."""
    app = ServerProcess([sys.executable, "-m", PACKAGE, "serve", "--port", "0"],
                        env=serve_env(database_url))  # fmt: skip
    try:
        port = app.wait_started(60)
        assert port > 0
        assert httpx.get(f"{app.url}/health", timeout=10).status_code == 200, app.describe()
    finally:
        assert app.stop() in (0, -15), app.describe()


def test_serve_on_a_taken_port_says_so_in_one_line(database_url: str) -> None:
    """`serve` on a port another process listens on exits 2 at once with one line naming the
    port and `--port` (not uvicorn's `[Errno 98]`); ServerProcess's failure message carries
    the server's own output."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = ServerProcess([sys.executable, "-m", PACKAGE, "serve", "--port", str(port)],
                            env=serve_env(database_url))  # fmt: skip
        try:
            with pytest.raises(AssertionError) as failed:
                app.wait_started(60)
        finally:
            app.stop()
    message = str(failed.value)
    assert "exited before it listened" in message and "(exit 2)" in message, message
    assert app.stderr == (
        f"error: port {port} on 127.0.0.1 is in use (is the app already running?): stop that "
        f"process, or serve on another port with --port {port + 1}\n"
    ), message
