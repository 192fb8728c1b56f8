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
import select
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


FORKABLE = (PACKAGE, "uvicorn")
"""The modules whose `python -m` commands the forkserver runs (it has imported both)."""


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: int | IO[str] = subprocess.DEVNULL,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
) -> Process:
    """`subprocess.Popen(argv, ..., text=True)`; a `python -m <package or uvicorn>` command is
    forked from the forkserver instead (the same process to the test, without the imports)."""
    forker = Forker.shared() if list(argv[:2]) == [sys.executable, "-m"] else None
    if forker is not None and len(argv) > 2 and argv[2] in FORKABLE:
        return forker.spawn(list(argv), env, cwd, stdin, stdout, stderr)
    return subprocess.Popen(
        list(argv), env=dict(env), cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr, text=True
    )


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: int | IO[str] = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end (at most a minute), its output captured as text; stdin is
    empty unless given (e.g. a pty)."""
    proc = spawn(argv, env=env, cwd=cwd, stdin=stdin)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return subprocess.CompletedProcess(list(argv), proc.wait(), stdout, stderr)


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

    def spawn(
        self,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path | None,
        stdin: int | IO[str],
        stdout: int,
        stderr: int,
    ) -> ForkedProcess:
        request = {"module": argv[2], "args": argv[3:], "env": dict(env),
                   "cwd": str(cwd or os.getcwd())}  # fmt: skip
        mine: list[int] = []  # our ends of the pipes
        theirs: list[int] = []  # what the child gets, closed here once it has them
        for stream, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
            if stream == subprocess.DEVNULL:
                theirs.append(os.open(os.devnull, os.O_RDONLY if target == 0 else os.O_WRONLY))
            elif stream == subprocess.PIPE and target > 0:
                read_end, write_end = os.pipe()
                mine.append(read_end)
                theirs.append(write_end)
            else:
                fd = stream if isinstance(stream, int) else stream.fileno()
                theirs.append(os.dup(fd))
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            message = json.dumps(request).encode() + b"\n"
            socket.send_fds(conn, [message], theirs)
            pid = int(conn.makefile("rb").readline())
        except BaseException:
            conn.close()
            for fd in mine:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        pipes = iter(mine)
        out = next(pipes) if stdout == subprocess.PIPE else None
        err = next(pipes) if stderr == subprocess.PIPE else None
        return ForkedProcess(argv, pid, conn, out, err)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class ForkedProcess:
    """A command the forkserver forked, with the part of `subprocess.Popen`'s interface the
    tests use; its exit status arrives on the socket that asked for it."""

    def __init__(
        self, argv: list[str], pid: int, conn: socket.socket, out: int | None, err: int | None
    ) -> None:
        self.args = argv
        self.pid = pid
        self.returncode: int | None = None
        self._conn = conn
        self._out, self._err = out, err
        self._streams: dict[int, IO[str]] = {}

    @property
    def stdout(self) -> IO[str] | None:
        """The output pipe as text (as `Popen(..., text=True)`; it then owns the descriptor)."""
        return self._stream(1)

    @property
    def stderr(self) -> IO[str] | None:
        return self._stream(2)

    def _stream(self, target: int) -> IO[str] | None:
        if target not in self._streams:
            fd = self._out if target == 1 else self._err
            if fd is None:
                return None
            encoding = locale.getpreferredencoding(False)
            self._streams[target] = open(fd, encoding=encoding)  # noqa: SIM115
            self._out, self._err = (None, self._err) if target == 1 else (self._out, None)
        return self._streams[target]

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read_status(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._read_status(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def _read_status(self, timeout: float | None) -> bool:
        ready, _, _ = select.select([self._conn], [], [], timeout)
        if not ready:
            return False
        data = b""
        while not data.endswith(b"\n"):
            more = self._conn.recv(64)
            if not more:
                break
            data += more
        self._conn.close()
        self.returncode = int(data) if data.strip() else -signal.SIGKILL
        return True

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Everything the command writes until it ends (its output pipes must be ours)."""
        assert self._out is not None and self._err is not None
        deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
        stdout, stderr = read_both(self._out, self._err, deadline)
        self._out = self._err = None
        self.wait(max(deadline - time.monotonic(), 0.1))
        return stdout, stderr


Process = subprocess.Popen[str] | ForkedProcess


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
