"""Servers the tests run as their own processes (`serve`, `db upgrade && serve`, ...).

Each one listens on `--port 0`: the OS picks a free port when the server binds, and the test
reads it from uvicorn's startup line ("Uvicorn running on http://127.0.0.1:PORT", logged at
INFO). Picking a free port first and binding it later races with every other process on the
machine (pytest-xdist workers included), and `serve` on a taken port exits 3 like any failed
start. Everything the server prints is kept, and `describe()` puts it in assertion messages,
so a failure shows why the server did what it did.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.commands import Process, spawn

STARTED = re.compile(r"running on https?://[^\s:/]+:(\d+)")


class ServerProcess:
    """A server command in its own process; its stdout and stderr collected as they come."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None
    ) -> None:
        self.argv = list(argv)
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.port: int | None = None
        self.proc = spawn(self.argv, env=env, cwd=cwd)
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: list[str]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    @property
    def url(self) -> str:
        assert self.port is not None, "the server has not started\n" + self.describe()
        return f"http://127.0.0.1:{self.port}"

    def describe(self) -> str:
        """The command, its exit status and everything it printed (for assertion messages)."""
        status = self.proc.poll()
        state = "running" if status is None else f"exit {status}"
        return (
            f"\n--- {' '.join(self.argv)} ({state})\n--- stdout:\n{self.stdout}"
            f"--- stderr:\n{self.stderr}--- end of the server's output"
        )

    def _poll_started(self) -> bool:
        """True once the startup line is there; raises if the process exited without it."""
        for line in self.stderr_lines + self.stdout_lines:
            match = STARTED.search(line)
            if match:
                self.port = int(match.group(1))
                return True
        if self.proc.poll() is not None:
            for reader in self._readers:
                reader.join(5)
            if not any(STARTED.search(line) for line in self.stderr_lines + self.stdout_lines):
                raise AssertionError("the server exited before it listened" + self.describe())
        return False

    def wait_started(self, seconds: float = 60) -> int:
        """Block until the server listens; its port. Fails with its output otherwise."""
        deadline = time.monotonic() + seconds
        while not self._poll_started():
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not listen within {seconds:g} s"
                                     + self.describe())  # fmt: skip
            time.sleep(0.05)
        assert self.port is not None
        return self.port

    async def started(self, seconds: float = 60) -> int:
        """`wait_started` for async tests (the event loop keeps running)."""
        deadline = time.monotonic() + seconds
        while not self._poll_started():
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not listen within {seconds:g} s"
                                     + self.describe())  # fmt: skip
            await asyncio.sleep(0.05)
        assert self.port is not None
        return self.port

    def stop(self, seconds: float = 15) -> int:
        """SIGTERM (as a deployment stops it), SIGKILL after `seconds`; the exit status."""
        status = stop_process(self.proc, seconds)
        for reader in self._readers:
            reader.join(5)
        return status


def stop_process(proc: Process | subprocess.Popen[Any], seconds: float = 15) -> int:
    """SIGTERM (as a deployment stops it), SIGKILL after `seconds`; the exit status."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode


def require_tool(name: str, package: str) -> str:
    """The tool's path; skip (or fail with REQUIRE_UI_TOOLS=1) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (Debian: apt-get install -y {package})"
        if os.environ.get("REQUIRE_UI_TOOLS") == "1":
            pytest.fail(f"{reason}, and REQUIRE_UI_TOOLS=1")
        pytest.skip(f"{reason}; set REQUIRE_UI_TOOLS=1 to make this a failure")
    return path
