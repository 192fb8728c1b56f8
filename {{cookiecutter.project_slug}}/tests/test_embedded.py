"""DATABASE_URL=embedded: the development PostgreSQL kept inside the project."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from {{ cookiecutter.project_slug }}.embedded import resolve_database_url
from {{ cookiecutter.project_slug }}.settings import Settings

PACKAGE = "{{ cookiecutter.project_slug }}"
AUTH_SECRET = "embedded-tests-" + "e" * 40


def test_a_real_url_is_used_as_it_is() -> None:
    url = "postgresql://app@db.example:5432/app"
    settings = Settings(database_url=url, auth_secret=AUTH_SECRET)  # type: ignore[arg-type]
    assert resolve_database_url(settings) == url


def run_db(data_dir: Path, command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "TEST_DATABASE_URL")}
    env.update(DATABASE_URL="embedded", EMBEDDED_DATA_DIR=str(data_dir), AUTH_SECRET=AUTH_SECRET)
    return subprocess.run(
        [sys.executable, "-m", PACKAGE, "db", command],
        env=env,
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def server_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_db_commands_start_the_embedded_server_and_leave_none_running(tmp_path: Path) -> None:
    project = tmp_path / "my project"
    project.mkdir()
    data_dir = project / ".postgres"

    upgrade = run_db(data_dir, "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert "database: embedded PostgreSQL in .postgres/" in upgrade.stdout
    assert "applied 0001_initial.sql" in upgrade.stdout
    assert "development" in upgrade.stderr  # the one-time warning
    assert upgrade.stderr.count("development PostgreSQL") == 1
    assert "Warning" not in upgrade.stderr  # no RuntimeDirWarning from platformdirs
    assert (data_dir / "PG_VERSION").exists()
    assert (data_dir / ".gitignore").read_text() == "*\n"
    assert not server_running(data_dir)

    # a user that died without cleaning up (kill -9) must not keep the server alive
    (data_dir / ".handle_pids.json").write_text(json.dumps([dead_pid()]))
    status = run_db(data_dir, "status")  # the data survived; the server starts again
    assert status.returncode == 0, status.stderr
    assert "schema up to date (version" in status.stdout
    assert not server_running(data_dir)


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_serve_stops_the_embedded_server_when_it_is_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / ".postgres"
    assert run_db(data_dir, "upgrade").returncode == 0
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "TEST_DATABASE_URL")}
    env.update(DATABASE_URL="embedded", EMBEDDED_DATA_DIR=str(data_dir), AUTH_SECRET=AUTH_SECRET)
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", PACKAGE, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for_health(port), "the app answers /health"
        assert server_running(data_dir)
    finally:
        app.send_signal(signal.SIGTERM)  # uvicorn re-raises it: exit handlers do not run
        app.wait(timeout=30)
    assert not server_running(data_dir), "the app released the development server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_health(port: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False
