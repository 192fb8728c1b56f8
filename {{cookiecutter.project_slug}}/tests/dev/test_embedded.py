"""DATABASE_URL=embedded: the development PostgreSQL kept inside the project."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.project_slug }}.dev.embedded import resolve_database_url
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support.processes import ServerProcess

PACKAGE = "{{ cookiecutter.project_slug }}"
AUTH_SECRET = "embedded-tests-CsW57nh9NbatKm-qm-u1JxjHrbwK3YefPSG5xM4h"


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
    upgrade = run_db(data_dir, "upgrade")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "TEST_DATABASE_URL")}
    env.update(DATABASE_URL="embedded", EMBEDDED_DATA_DIR=str(data_dir), AUTH_SECRET=AUTH_SECRET,
               LOG_LEVEL="INFO")  # fmt: skip
    app = ServerProcess([sys.executable, "-m", PACKAGE, "serve", "--port", "0"], env=env,
                        cwd=tmp_path)  # fmt: skip
    try:
        app.wait_started(60)
        assert httpx.get(app.url + "/health", timeout=10).status_code == 200, app.describe()
        assert server_running(data_dir), app.describe()
    finally:
        app.stop(30)  # SIGTERM: uvicorn re-raises it, so exit handlers do not run
    assert not server_running(data_dir), "the app released the development server" + (
        app.describe()
    )


def serve_embedded(project: Path) -> ServerProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "TEST_DATABASE_URL")}
    env.update(DATABASE_URL="embedded", EMBEDDED_DATA_DIR=str(project / ".postgres"),
               AUTH_SECRET=AUTH_SECRET, LOG_LEVEL="INFO")  # fmt: skip
    return ServerProcess([sys.executable, "-m", PACKAGE, "serve", "--port", "0"], env=env,
                         cwd=project)  # fmt: skip


def health(app: ServerProcess) -> httpx.Response:
    app.wait_started(60)
    return httpx.get(app.url + "/health", timeout=10)


def interrupt(app: ServerProcess) -> None:
    """Ctrl+C, as a developer stops `serve`."""
    app.proc.send_signal(signal.SIGINT)
    assert app.proc.wait(30) == 0, app.describe()


@pytest.fixture
def projects_root() -> Iterator[Path]:
    """A folder for projects outside pytest's temp root: pytest sets that to mode 0700 whenever
    a pytest starts, and PostgreSQL run by root runs as another user, which then cannot reach
    its data folder (tests running beside would break these)."""
    root = Path(tempfile.mkdtemp(prefix="embedded-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_two_projects_serve_their_embedded_databases_at_once(projects_root: Path) -> None:
    """Two projects (or two checkouts of one), one user, one machine: each `serve` has its own
    PostgreSQL; one stopped by Ctrl+C starts cleanly again while the other keeps serving."""
    projects = [projects_root / "one", projects_root / "two"]
    for project in projects:
        project.mkdir()
    with ThreadPoolExecutor(2) as pool:
        for done in pool.map(lambda p: run_db(p / ".postgres", "upgrade"), projects):
            assert done.returncode == 0, done.stdout + done.stderr
    apps = [serve_embedded(project) for project in projects]
    try:
        for app in apps:
            assert health(app).json() == {"status": "ok", "database": "ok"}, app.describe()
        interrupt(apps[0])
        assert not server_running(projects[0] / ".postgres"), apps[0].describe()
        assert health(apps[1]).status_code == 200, apps[1].describe()
        apps[0] = serve_embedded(projects[0])
        assert health(apps[0]).status_code == 200, apps[0].describe()
    finally:
        for app in apps:
            app.stop(30)
    assert not any(server_running(project / ".postgres") for project in projects)


def test_a_copied_project_starts_its_own_server(projects_root: Path) -> None:
    """A copy of a project taken while its server runs holds that server's `postmaster.pid`
    (and an unreadable user list, as an interrupted write leaves): the copy starts a server of
    its own, and stopping it leaves the original's running."""
    original, copy = projects_root / "original", projects_root / "copy"
    original.mkdir()
    assert run_db(original / ".postgres", "upgrade").returncode == 0
    first = serve_embedded(original)
    try:
        assert health(first).status_code == 200, first.describe()
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)  # owners kept
        assert (copy / ".postgres" / "postmaster.pid").exists()
        (copy / ".postgres" / ".handle_pids.json").write_text("[12")
        second = serve_embedded(copy)
        try:
            assert health(second).json()["status"] == "ok", second.describe()
            assert server_running(copy / ".postgres"), second.describe()
        finally:
            interrupt(second)
        assert not server_running(copy / ".postgres"), second.describe()
        assert health(first).status_code == 200, first.describe()
    finally:
        first.stop(30)
    assert not server_running(original / ".postgres"), first.describe()
