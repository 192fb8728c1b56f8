"""Bake the template with the real cookiecutter CLI and check what comes out."""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import yaml

from tests.bake import (
    TEMPLATE,
    UNRENDERED,
    Baked,
    Baker,
    files_under,
    postgres_processes_using,
    run_in,
    uv_binary,
)

TABLES = {"threads", "thread_items", "attachments", "schema_migrations"}
YES_NO = {"chat_page", "create_tables", "examples"}
PASSWORD = "Hunter2-#not$safe"
NASTY = 'Tom\'s "Chat" — $(touch pwned) `id`; & | < > 🚀 ünïcödé \\ %s #'


def assert_ok(baked: Baked) -> None:
    assert baked.result.returncode == 0, baked.output
    assert baked.project.is_dir(), baked.output


def assert_fully_rendered(project: Path) -> None:
    for path in files_under(project):
        text = path.read_text("utf-8", errors="replace")
        assert not UNRENDERED.search(text), f"unrendered Jinja in {path}"
        assert "{{cookiecutter" not in path.name and "{{ cookiecutter" not in path.name


def assert_password_only_in_env(baked: Baked, secret: str, *, in_env: bool = True) -> None:
    """The secret is in .env and nowhere else: output, replay files, temp files, home."""
    assert secret not in baked.output
    places = [baked.home, baked.tmpdir, baked.replay_dir, baked.out]
    holders = [
        path
        for place in places
        if place.exists()
        for path in files_under(place)
        if secret.encode() in path.read_bytes()
    ]
    assert holders == ([baked.project / ".env"] if in_env else [])


# ------------------------------------------------------------------------------ defaults


def test_defaults_create_tables_in_embedded_database(baker: Baker, tmp_path: Path) -> None:
    """`cookiecutter <template> --no-input`, nothing else: every default, tables included."""
    baked = baker(tmp_path)
    assert_ok(baked)
    assert "tables created" in baked.result.stdout, baked.output
    assert "warning" not in baked.output.lower()
    assert postgres_processes_using(baked.project) == []
    env = baked.env_file()
    assert env["DATABASE_URL"] == "embedded"
    assert env["OPENAI_MODEL"] == "gpt-4.1"
    assert len(env["AUTH_SECRET"]) >= 48
    status = run_in(
        baked.project, "uv", "run", "--quiet", "python", "-m", baked.slug, "db", "status"
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "up to date" in status.stdout
    assert postgres_processes_using(baked.project) == []
    assert_fully_rendered(baked.project)


# ------------------------------------------------------------------------------ answers


MATRIX = [
    ("acme_support", ["project_name=Acme Support", "chat_page=no", "examples=no",
                      "python_version=3.12"]),
    ("chat2", ["project_name=Chat 2", "project_slug=chat2", "model=gpt-4o-mini"]),
    ("my_bot", ["project_name=My-Bot", "model=meta-llama/Llama-3.1-8B-Instruct", "chat_page=yes",
                "python_version=3.13", "database_url=postgres://bot@db.internal:5432/bot"]),
    ("tom_s_chat", [f"project_name={NASTY}", "project_slug=tom_s_chat",
                    f"description={NASTY}", f"author_name={NASTY}"]),
]  # fmt: skip


@pytest.mark.parametrize(("slug", "answers"), MATRIX, ids=[slug for slug, _ in MATRIX])
def test_answer_matrix(baker: Baker, tmp_path: Path, slug: str, answers: list[str]) -> None:
    baked = baker(tmp_path, *answers, "create_tables=no", slug=slug)
    assert_ok(baked)
    project = baked.project
    assert (project / "src" / slug / "__init__.py").is_file()
    assert_fully_rendered(project)
    assert not (tmp_path / "pwned").exists() and not (project / "pwned").exists()
    pyproject = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))
    assert pyproject["project"]["name"] == slug
    if "description" in baked.answers:
        assert pyproject["project"]["description"] == baked.answers["description"]
    python = baked.answers.get("python_version", "3.11")
    assert pyproject["project"]["requires-python"] == f">={python}"
    assert f"FROM python:{python}-slim" in (project / "Dockerfile").read_text()
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    assert set(compose["services"]) == {"app", "db", "proxy", "s3"}
    assert compose["services"]["s3"]["profiles"] == ["s3"]  # only with --profile s3
    model = baked.answers.get("model", "gpt-4.1")
    assert baked.env_file()["OPENAI_MODEL"] == model
    answers_file = baked.cruft()["context"]["cookiecutter"]
    for key, value in baked.answers.items():
        if key not in YES_NO:
            assert answers_file[key] == value
    for key in YES_NO - {"create_tables"}:
        assert answers_file[key] is (baked.answers.get(key, "yes") == "yes")
    assert "skipped creating the tables" in baked.result.stdout


# ------------------------------------------------------------------------------ databases


def test_unreachable_database_keeps_the_project(baker: Baker, tmp_path: Path) -> None:
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@127.0.0.1:9/app?connect_timeout=3"
    baked = baker(tmp_path, f"database_url={url}")
    assert_ok(baked)
    warnings = [line for line in baked.result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, baked.output
    assert f"cd {baked.project} && uv run python -m my_chatkit_app db upgrade" in warnings[0]
    assert (baked.project / ".env").is_file()
    assert baked.env_file()["DATABASE_URL"].strip("'") == url
    assert_password_only_in_env(baked, quote(PASSWORD, safe=""))
    assert_password_only_in_env(baked, PASSWORD, in_env=False)


def test_no_uv_keeps_the_project(baker: Baker, tmp_path: Path) -> None:
    path = os.pathsep.join([str(baker.bin_dir), "/usr/bin", "/bin"])
    if shutil.which("uv", path=path):
        pytest.skip("uv is installed system-wide; cannot hide it")
    baked = baker(tmp_path, path=path)
    assert_ok(baked)
    warnings = [line for line in baked.result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, baked.output
    assert "uv is not installed" in warnings[0]
    assert "uv run python -m my_chatkit_app db upgrade" in warnings[0]
    assert (baked.project / ".env").is_file()


def test_project_is_locked_and_ci_installs_from_the_lock(baker: Baker, tmp_path: Path) -> None:
    """uv.lock is written at generation, committed, and CI installs with `uv sync --locked`."""
    baked = baker(tmp_path, "create_tables=no")
    assert_ok(baked)
    assert "warning" not in baked.output.lower(), baked.output
    lock = baked.project / "uv.lock"
    assert lock.is_file(), baked.output
    assert 'name = "my-chatkit-app"' in lock.read_text() or 'name = "my_chatkit_app"' in (
        lock.read_text()
    )
    current = run_in(baked.project, "uv", "lock", "--check", "--offline")
    assert current.returncode == 0, current.stdout + current.stderr
    ci = yaml.safe_load((baked.project / ".github" / "workflows" / "ci.yml").read_text())
    installs = [step["run"] for job in ci["jobs"].values() for step in job["steps"]
                if step.get("run", "").startswith("uv sync")]  # fmt: skip
    assert installs == ["uv sync --locked"]
    # cruft leaves the project's own lock alone (it is not a template file)
    assert "uv.lock" in baked.cruft()["skip"]
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q"], cwd=baked.project, check=True)
    ignored = subprocess.run(["git", "check-ignore", "uv.lock"], cwd=baked.project, check=False)
    assert ignored.returncode == 1, "uv.lock must be committed"


def python_missing_here(path: str, env: dict[str, str]) -> str | None:
    """A python_version (3.12 or 3.13) that uv cannot find with this PATH, if any."""
    for version in ("3.13", "3.12"):
        done = subprocess.run(
            [uv_binary(), "python", "find", version], capture_output=True, text=True,
            env={**env, "PATH": path, "UV_PYTHON_DOWNLOADS": "never"}, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            return version
    return None


@pytest.mark.parametrize("downloads", ["never", "unreachable"])
def test_no_python_for_python_version_is_named(
    baker: Baker, tmp_path: Path, downloads: str
) -> None:
    """No Python 3.13 here, and uv may not (or cannot) download one: the warning says so and
    how to get out, not uv's last line about DNS or a download."""
    path = os.pathsep.join([str(baker.bin_dir), str(Path(uv_binary()).parent), "/usr/bin", "/bin"])
    env = {"HOME": str(tmp_path / "home"), "UV_PYTHON_INSTALL_DIR": str(tmp_path / "pythons")}
    if downloads == "unreachable":  # downloads allowed, but from a mirror nothing answers on
        env.update(UV_PYTHON_DOWNLOADS="automatic", UV_HTTP_RETRIES="0",
                   UV_PYTHON_INSTALL_MIRROR="http://127.0.0.1:9/python")  # fmt: skip
    version = python_missing_here(path, {**os.environ, **env, "UV_PYTHON": ""})
    if version is None:
        pytest.skip("Python 3.12 and 3.13 are both on this machine")
    baked = baker(tmp_path, f"python_version={version}", path=path, env=env)
    assert_ok(baked)
    warnings = [line for line in baked.result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, baked.output
    (line,) = warnings
    assert f"uv found no Python {version} or newer on this machine" in line, line
    assert f"install Python {version}" in line, line
    assert "python_version=3.11" in line, line
    assert line.endswith(
        f"then run: cd {baked.project} && uv lock && uv run python -m my_chatkit_app db upgrade"
    ), line
    assert (baked.project / ".env").is_file()


def test_real_postgres_gets_the_tables(
    baker: Baker, tmp_path: Path, new_database: Callable[[str], str]
) -> None:
    fresh_database = new_database(PASSWORD)
    baked = baker(tmp_path, f"database_url={fresh_database}", "project_slug=real_db_app",
                  slug="real_db_app")  # fmt: skip
    assert_ok(baked)
    assert "tables created" in baked.result.stdout, baked.output
    assert "warning" not in baked.output.lower()
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        versions = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert {row[0] for row in rows} >= TABLES
    assert versions and versions[0] >= 1
    assert_password_only_in_env(baked, quote(PASSWORD, safe=""))


# ------------------------------------------------------------------------------ secrets


def test_env_file_is_private_and_ignored(baker: Baker, tmp_path: Path) -> None:
    baked = baker(tmp_path, "create_tables=no", env={"OPENAI_API_KEY": "sk-test-from-env"})
    assert_ok(baked)
    env_path = baked.project / ".env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    assert baked.env_file()["OPENAI_API_KEY"] == "sk-test-from-env"
    assert "sk-test-from-env" not in (baked.project / ".env.example").read_text()
    assert_password_only_in_env(baked, "sk-test-from-env")
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q"], cwd=baked.project, check=True)
    (baked.project / ".postgres").mkdir()
    (baked.project / ".postgres" / "PG_VERSION").write_text("18")
    ignored = subprocess.run(
        ["git", "check-ignore", ".env", ".postgres/PG_VERSION"],
        cwd=baked.project, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ignored.stdout.split() == [".env", ".postgres/PG_VERSION"]
    tracked = subprocess.run(
        ["git", "check-ignore", ".env.example", ".cruft.json"], cwd=baked.project, check=False
    )
    assert tracked.returncode == 1, ".env.example and .cruft.json must be committed"


def test_two_projects_get_different_secrets(baker: Baker, tmp_path: Path) -> None:
    first = baker(tmp_path / "a", "create_tables=no")
    second = baker(tmp_path / "b", "create_tables=no")
    assert first.env_file()["AUTH_SECRET"] != second.env_file()["AUTH_SECRET"]


def test_password_not_in_default_replay_location(baker: Baker, tmp_path: Path) -> None:
    """No --config-file: cookiecutter writes ~/.cookiecutter_replay/; the hook scrubs it."""
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@db.example.com/app"
    baked = baker(tmp_path, f"database_url={url}", "create_tables=no", use_config_file=False)
    assert_ok(baked)
    replay = baked.home / ".cookiecutter_replay"
    files = list(replay.glob("*.json"))
    assert files, "cookiecutter wrote no replay file"
    data = json.loads(files[0].read_text())
    assert data["cookiecutter"]["database_url"] == "postgresql://app@db.example.com/app"
    assert data["_cookiecutter"]["database_url"] == "postgresql://app@db.example.com/app"
    assert_password_only_in_env(baked, quote(PASSWORD, safe=""))
    assert baked.cruft()["context"]["cookiecutter"]["database_url"] == (
        "postgresql://app@db.example.com/app"
    )


def test_password_not_in_replay_from_config_env(baker: Baker, tmp_path: Path) -> None:
    """COOKIECUTTER_CONFIG names the replay dir."""
    config = tmp_path / "cc.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'env-replay'}\n")
    url = f"postgresql://app:{quote(PASSWORD, safe='')}@db.example.com/app"
    baked = baker(tmp_path, f"database_url={url}", "create_tables=no", use_config_file=False,
                  env={"COOKIECUTTER_CONFIG": str(config)})  # fmt: skip
    assert_ok(baked)
    replay = list((tmp_path / "env-replay").glob("*.json"))
    assert replay and quote(PASSWORD, safe="") not in replay[0].read_text()


# ------------------------------------------------------------------------------ regeneration


def test_regenerating_with_force_keeps_env(baker: Baker, tmp_path: Path) -> None:
    first = baker(tmp_path, "create_tables=no")
    assert_ok(first)
    before = (first.project / ".env").read_text()
    (first.project / "src" / "my_chatkit_app" / "mine.py").write_text("KEEP = 1\n")
    second = baker(tmp_path, "create_tables=no", "model=gpt-4o", options=("-f",))
    assert_ok(second)
    assert (second.project / ".env").read_text() == before
    assert "kept the existing .env" in second.result.stdout
    assert (second.project / "src" / "my_chatkit_app" / "mine.py").is_file()
    assert second.cruft()["context"]["cookiecutter"]["model"] == "gpt-4o"


def test_rejected_regeneration_keeps_existing_project(baker: Baker, tmp_path: Path) -> None:
    first = baker(tmp_path, "create_tables=no")
    assert_ok(first)
    second = baker(tmp_path, "model=bad model", options=("-f",))
    assert second.result.returncode != 0
    assert (first.project / ".env").is_file()


# ------------------------------------------------------------------------------ examples

EXAMPLE_NAMES = (
    "get_time", "switch_theme", "clock.refresh", "clock_widget", "clock.ask", "clock.show",
    "clock.refreshed", "count_down", "clock.widget",
)  # fmt: skip
TEMPLATE_PACKAGE = (
    TEMPLATE / "{{cookiecutter.project_slug}}" / "src" / "{{cookiecutter.project_slug}}"
)


def example_files(slug: str) -> list[str]:
    """The post hook's EXAMPLE_FILES for this slug (read from the hook's source)."""
    tree = ast.parse((TEMPLATE / "hooks" / "post_gen_project.py").read_text("utf-8"))
    node = next(
        n for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "EXAMPLE_FILES"
    )  # fmt: skip
    return [pattern.format(slug=slug) for pattern in ast.literal_eval(node.value)]


def mentions(project: Path, names: tuple[str, ...]) -> dict[str, list[str]]:
    """For each name, the files under src/ and tests/ that contain it."""
    found: dict[str, list[str]] = {name: [] for name in names}
    for top in ("src", "tests"):
        for path in files_under(project / top, skip=(".venv", ".postgres", "__pycache__")):
            text = path.read_text("utf-8", errors="replace")
            for name in names:
                if name in text:
                    found[name].append(str(path.relative_to(project)))
    return found


def test_examples_no_leaves_out_the_example_code(baker: Baker, tmp_path: Path) -> None:
    baked = baker(tmp_path, "examples=no", "create_tables=no")
    assert_ok(baked)
    files = example_files(baked.slug)
    assert files, "EXAMPLE_FILES is empty"
    present = [name for name in files if (baked.project / name).exists()]
    assert present == [], f"example files left in an examples=no project: {present}"
    found = {name: paths for name, paths in mentions(baked.project, EXAMPLE_NAMES).items() if paths}
    assert found == {}, f"example code left in an examples=no project: {found}"
    assert baked.cruft()["context"]["cookiecutter"]["examples"] is False
    assert_fully_rendered(baked.project)


def test_default_has_the_examples(baker: Baker, tmp_path: Path) -> None:
    if not (TEMPLATE_PACKAGE / "agent" / "tools.py").is_file():
        pytest.skip("the example code (tools.py, widgets.py, ...) is not in the template yet")
    baked = baker(tmp_path, "create_tables=no")
    assert_ok(baked)
    missing = [name for name in example_files(baked.slug) if not (baked.project / name).is_file()]
    assert missing == [], f"example files missing from a default project: {missing}"
    absent = [name for name, paths in mentions(baked.project, EXAMPLE_NAMES).items() if not paths]
    assert absent == [], f"a default project never mentions {absent}"
    assert baked.cruft()["context"]["cookiecutter"]["examples"] is True
