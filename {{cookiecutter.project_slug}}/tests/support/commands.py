"""The project's command line as users run it: `python -m <package> ...` in a process of its own.

On Linux those processes are forked from one that imported the package once (forkserver.py):
the same command, environment, folder and standard streams, without 1.5 s of imports each.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from tests.support.app import TEST_AUTH_SECRET

PACKAGE = "{{ cookiecutter.project_slug }}"
TIMEOUT = 60
APP_SETTINGS = ("OPENAI_", "DATABASE_")
"""Prefixes of the variables a test's environment must not pass on to a command."""


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: int | IO[str] = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end (at most a minute), its output captured as text; stdin is
    empty unless given (e.g. a pty)."""
    forker = Forker.shared() if list(argv[:3]) == [sys.executable, "-m", PACKAGE] else None
    if forker is not None:
        return forker.run(list(argv), env, cwd, stdin)
    return subprocess.run(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def cli_env(database_url: str) -> dict[str, str]:
    """This environment with only DATABASE_URL and AUTH_SECRET of the app's configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(APP_SETTINGS)}
    env.update(DATABASE_URL=database_url, AUTH_SECRET=TEST_AUTH_SECRET)
    return env


def run_cli(
    cwd: Path, database_url: str, *args: str, stdin: int | IO[str] = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """`python -m <package> ARGS` against that database."""
    return run(
        [sys.executable, "-m", PACKAGE, *args], env=cli_env(database_url), cwd=cwd, stdin=stdin
    )


class Forker:
    """This test process's forkserver.py (one per pytest worker), started on first use."""

    _shared: Forker | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="cli-fork-"))
        self.path = str(self.folder / "socket")
        self.log = (self.folder / "log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forkserver.py")), self.path],
            env={k: v for k, v in os.environ.items() if not k.startswith(APP_SETTINGS)},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        atexit.register(self.stop)

    @classmethod
    def shared(cls) -> Forker | None:
        """The forkserver, once it listens; None off Linux or when it could not start (the
        commands then start as ordinary processes, and show why they fail if they do)."""
        if sys.platform != "linux":
            return None
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            forker = cls._shared
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(forker.path):
            if forker.proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        return forker

    def run(
        self, argv: list[str], env: Mapping[str, str], cwd: Path | None, stdin: int | IO[str]
    ) -> subprocess.CompletedProcess[str]:
        request = {"args": argv[3:], "env": dict(env), "cwd": str(cwd or os.getcwd())}
        devnull = os.open(os.devnull, os.O_RDONLY) if stdin == subprocess.DEVNULL else None
        if devnull is not None:
            stdin_fd = devnull
        else:
            stdin_fd = stdin if isinstance(stdin, int) else stdin.fileno()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            try:
                conn.connect(self.path)
                message = json.dumps(request).encode() + b"\n"
                socket.send_fds(conn, [message], [stdin_fd, out_w, err_w])
            finally:
                for fd in (out_w, err_w, devnull):
                    if fd is not None:
                        os.close(fd)
            answers = conn.makefile("rb")
            pid = int(answers.readline())
            try:
                stdout, stderr = read_both(out_r, err_r, time.monotonic() + TIMEOUT)
            except subprocess.TimeoutExpired as expired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                expired.cmd = argv
                raise
            status = int(answers.readline())
        return subprocess.CompletedProcess(argv, status, stdout, stderr)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def read_both(out: int, err: int, deadline: float) -> tuple[str, str]:
    """Everything written to the two pipes until both close, as text (like `subprocess.run`:
    the locale's encoding, universal newlines); TimeoutExpired after `deadline`."""
    chunks: dict[int, list[bytes]] = {out: [], err: []}
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        try:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired([], TIMEOUT)
                for key, _ in selector.select(left):
                    data = os.read(key.fd, 1 << 16)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        selector.unregister(key.fd)
        finally:
            os.close(out)
            os.close(err)
    encoding = locale.getpreferredencoding(False)
    stdout, stderr = (b"".join(chunks[fd]).decode(encoding) for fd in (out, err))
    return universal_newlines(stdout), universal_newlines(stderr)


def universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")
