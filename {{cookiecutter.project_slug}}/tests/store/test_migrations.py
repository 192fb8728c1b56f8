"""Schema migrations and the `db` command, against a real PostgreSQL.

Each test that needs an empty database gets a schema of its own (`fresh_schema_url`).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.project_slug }}.store.db import (
    apply_migrations,
    load_migrations,
    redact_url,
    schema_status,
)
from tests.support.commands import PACKAGE, cli_env, run_cli, spawn

FIRST = "0001_initial.sql"


def test_migration_files_are_numbered_in_order() -> None:
    migrations = load_migrations()
    assert migrations[0].name == FIRST
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.strip() for m in migrations)


async def test_status_then_upgrade_then_rerun(fresh_schema_url: str) -> None:
    before = await schema_status(fresh_schema_url)
    assert (before.current, before.up_to_date) == (0, False)
    assert before.pending == [m.name for m in load_migrations()]
    assert await apply_migrations(fresh_schema_url) == before.pending
    assert await apply_migrations(fresh_schema_url) == []  # idempotent
    after = await schema_status(fresh_schema_url)
    assert (after.current, after.latest, after.pending) == (before.latest, before.latest, [])


async def test_concurrent_upgrades_apply_each_migration_once(fresh_schema_url: str) -> None:
    results = await asyncio.gather(*(apply_migrations(fresh_schema_url) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in load_migrations())
    assert (await schema_status(fresh_schema_url)).up_to_date


def test_cli_status_and_upgrade(fresh_schema_url: str, tmp_path: Path) -> None:
    status = run_cli(tmp_path, fresh_schema_url, "db", "status")
    assert status.returncode == 0, status.stderr
    assert f"pending {FIRST}" in status.stdout
    upgrade = run_cli(tmp_path, fresh_schema_url, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"applied {FIRST}" in upgrade.stdout
    assert "schema up to date (version" in upgrade.stdout
    again = run_cli(tmp_path, fresh_schema_url, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert "applied" not in again.stdout and "schema up to date" in again.stdout
    status = run_cli(tmp_path, fresh_schema_url, "db", "status")
    assert "schema up to date" in status.stdout


def test_two_processes_upgrade_at_once(fresh_schema_url: str, tmp_path: Path) -> None:
    command = [sys.executable, "-m", PACKAGE, "db", "upgrade"]
    procs = [spawn(command, env=cli_env(fresh_schema_url), cwd=tmp_path) for _ in range(2)]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert sum(out.count(f"applied {FIRST}") for out in outputs) == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cret-pw@127.0.0.1:1/app",
        "postgresql://app@127.0.0.1:1/app?password=s3cret-pw",
    ],
)
def test_cli_unreachable_database_is_one_line_without_password(tmp_path: Path, url: str) -> None:
    result = run_cli(tmp_path, url, "db", "upgrade")
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: cannot reach the database: ")
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "***" in result.stdout


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p@ss/w@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db?password=pw&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/x",
            "postgresql://postgres:@/postgres?host=/tmp/x",
        ),
        ("host=h password='a b' user=u", "host=h password=*** user=u"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
