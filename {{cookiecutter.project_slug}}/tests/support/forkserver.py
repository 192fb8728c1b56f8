"""Runs the tests' `python -m <package or uvicorn> ...` commands and servers, each in a process
of its own forked from this one, which imported the package once (tests/support/commands.py
starts it, Linux only).

A command costs a fresh interpreter about 1.5 s of CPU in imports, and the suite runs dozens.
A request on the unix socket is one JSON line (`module`, `args`, `env`, `cwd`) with three
descriptors attached (stdin, stdout, stderr); the answer is two lines, the child's pid and its
exit status. The child is what `python -m <module>` would be: those descriptors as 0, 1 and 2,
that environment and folder, the module run as `__main__`, a normal interpreter exit.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import runpy
import shutil
import socket
import sys
from typing import Any

PACKAGE = "{{ cookiecutter.project_slug }}"
# What commands import: the command line (the rest of it on demand), the store (ChatKit, the
# Agents SDK, openai, psycopg), the bulk of a command's start, and what `serve` adds.
PRELOAD = (f"{PACKAGE}.cli", f"{PACKAGE}.store", f"{PACKAGE}.main", "uvicorn.main")


def serve(path: str) -> tuple[dict[str, Any], list[int]]:
    """Answer requests until the parent goes; returns (only in a forked child) its request."""
    for name in PRELOAD:
        importlib.import_module(name)
    # The children's collections (the app's own at startup among them) then skip what they
    # share with this process instead of scanning, and so copying, every page of it.
    gc.freeze()
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"{path}.new")
    listener.listen(64)
    os.rename(f"{path}.new", path)  # there only once it listens
    listener.settimeout(0.05)
    waiting: dict[int, socket.socket] = {}
    while os.getppid() == parent:
        reap(waiting)
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        try:
            data, fds = receive(conn)
        except (OSError, ValueError):
            conn.close()  # the test gets no pid and says so
            continue
        pid = os.fork()
        if pid == 0:
            listener.close()
            for other in [conn, *waiting.values()]:
                other.close()
            return json.loads(data), fds
        for fd in fds:
            os.close(fd)
        conn.sendall(f"{pid}\n".encode())
        waiting[pid] = conn
    # the test process is gone (a pytest-xdist worker may exit without its atexit handlers)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    sys.exit(0)


def receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    """One request: its JSON line and its three descriptors."""
    conn.settimeout(30)
    data, fds, _flags, _address = socket.recv_fds(conn, 1 << 16, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            break
        data += more
    if len(fds) != 3:
        raise ValueError(f"expected 3 descriptors, got {len(fds)}")
    return data, fds


def reap(waiting: dict[int, socket.socket]) -> None:
    """Send the exit status of every child that ended to whoever asked for it."""
    while waiting:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        conn = waiting.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):  # the test may have stopped waiting
                conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()


def become(request: dict[str, Any], fds: list[int]) -> None:
    """Turn this forked child into the command's process, up to running its module."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [sys.argv[0], *request["args"]]
    sys.path[0] = os.getcwd()  # as `python -m` puts it first


if __name__ == "__main__":
    sys.path[0] = os.getcwd()  # not tests/support/: its chatkit.py would shadow the library
    request, fds = serve(sys.argv[1])
    become(request, fds)
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
