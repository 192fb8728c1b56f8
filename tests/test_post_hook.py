"""Unit tests of the post-generation hook: its entry (hooks/post_gen_project.py, rendered as
cookiecutter renders it, then imported) and the modules it hands over to (hooks/post_gen/)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import types
from pathlib import Path

import pytest
from dotenv import dotenv_values
from post_gen import answers as cruft_answers
from post_gen import common, env_file, lock, tables

from tests.bake import TEMPLATE
from tests.hook_render import load_hook


@pytest.fixture(scope="module")
def post() -> types.ModuleType:
    return load_hook("post_gen_project")


# ------------------------------------------------------------------------------ .env


@pytest.mark.parametrize(
    "value",
    ["embedded", "gpt-4.1", "postgresql://u:p%40ss@h:5432/db?sslmode=require&x=1",
     "postgresql://u:it's #not $HOME\\x@h/db", "sk-abc_DEF-123", ""],
)  # fmt: skip
def test_env_values_round_trip_through_dotenv(tmp_path: Path, value: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"KEY={env_file.env_value(value)}\n")
    assert dotenv_values(path)["KEY"] == value


def test_env_file(post: types.ModuleType, tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        text = env_file.env_file_text(post.CONTEXT, "", "s" * 64)
        assert env_file.write_env(tmp_path, text)
    finally:
        os.umask(old_umask)
    path = tmp_path / ".env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = dotenv_values(path)
    assert values == {
        "DATABASE_URL": "embedded",
        "OPENAI_MODEL": "gpt-4.1",
        "OPENAI_API_KEY": "",
        "AUTH_SECRET": "s" * 64,
    }
    assert "platform.openai.com/api-keys" in path.read_text()
    assert not env_file.write_env(tmp_path, "DIFFERENT=1\n")
    assert dotenv_values(path)["AUTH_SECRET"] == "s" * 64


# ------------------------------------------------------------------------------ answers


def test_recorded_answers_carry_no_password(tmp_path: Path) -> None:
    post = load_hook("post_gen_project", database_url="postgresql://u:hunter2@h/db")
    data = cruft_answers.recorded_answers(post.CONTEXT, "/t", "a" * 40)
    answers = data["context"]["cookiecutter"]
    assert "hunter2" not in json.dumps(data)
    assert answers["database_url"] == "postgresql://u@h/db"
    assert answers["create_tables"] is False
    assert "_output_dir" not in answers and "_repo_dir" not in answers
    assert data["template"] == "/t" and data["commit"] == "a" * 40
    assert ".env" in data["skip"]


def test_template_location(tmp_path: Path) -> None:
    """What `.cruft.json` records is something `git clone` (and so cruft) understands."""
    (tmp_path / "cookiecutter.json").write_text("{}")
    location = cruft_answers.template_location
    mine = {**cruft_answers.BUILTIN_ABBREVIATIONS, "loc": "file:///srv/templates/{0}.git"}
    assert location(".", tmp_path) == str(tmp_path)
    assert location("gh:acme/tpl", tmp_path) == "https://github.com/acme/tpl.git"
    assert location("gl:acme/tpl", tmp_path) == "https://gitlab.com/acme/tpl.git"
    assert location("bb:acme/tpl", tmp_path) == "https://bitbucket.org/acme/tpl"
    assert location("loc:tpl", tmp_path, mine) == "file:///srv/templates/tpl.git"
    assert location("git+file:///srv/t.git", tmp_path) == "file:///srv/t.git"
    assert location("git+https://x/y.git", tmp_path) == "https://x/y.git"
    assert location("git+ssh://git@x/y.git", tmp_path) == "ssh://git@x/y.git"
    assert location("git@github.com:a/b.git", tmp_path) == "git@github.com:a/b.git"
    assert location("https://x/y.git", tmp_path) == "https://x/y.git"
    assert location("/abs/tpl", tmp_path) == "/abs/tpl"


def test_an_abbreviation_the_hook_cannot_see_comes_from_the_clone(tmp_path: Path) -> None:
    """Off Linux the hook cannot read `--config-file`; the clone's origin is the URL."""
    clone = tmp_path / "clone"
    clone.mkdir()
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    subprocess.run(["git", "remote", "add", "origin", "file:///srv/t.git"], cwd=clone, check=True)
    assert cruft_answers.template_location("mine:t", tmp_path, None, clone) == "file:///srv/t.git"


@pytest.mark.parametrize(
    "template", ["gh:a/b", "gl:a/b", "bb:a/b", "loc:x", "loc", "gh", "https://x/y", "./t", "a:b:c"]
)
def test_abbreviations_expand_like_cookiecutter(template: str) -> None:
    """The hook's copies of cookiecutter's abbreviations, expansion and repo-URL test agree."""
    from cookiecutter.config import BUILTIN_ABBREVIATIONS
    from cookiecutter.repository import expand_abbreviations, is_repo_url

    mine = {**BUILTIN_ABBREVIATIONS, "loc": "file:///t/{0}.git"}
    assert cruft_answers.BUILTIN_ABBREVIATIONS == BUILTIN_ABBREVIATIONS
    expanded = cruft_answers.expand_abbreviations(template, mine)
    assert expanded == expand_abbreviations(template, mine)
    assert bool(cruft_answers.REPO_URL.match(expanded)) == is_repo_url(expanded)


def test_user_abbreviations_come_from_the_cookiecutter_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('abbreviations:\n  loc: "file:///t/{0}.git"\n')
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
    monkeypatch.setattr(cruft_answers, "config_args_from_parent", lambda: (None, False))
    found = cruft_answers.user_abbreviations()
    assert found["loc"] == "file:///t/{0}.git"
    assert found["gh"] == "https://github.com/{0}.git"


def test_cruft_regeneration_is_recognised(post: types.ModuleType) -> None:
    """cruft renders with `_commit` in the context and without cookiecutter's `_output_dir`."""
    assert not post.regenerating(post.CONTEXT)
    cruft_context = {k: v for k, v in post.CONTEXT.items() if not k.startswith("_")}
    assert post.regenerating({**cruft_context, "_template": "x", "_commit": "a" * 40})


@pytest.mark.parametrize("examples", [True, False])
def test_under_cruft_the_hook_is_silent_and_touches_nothing_else(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    examples: bool,
) -> None:  # fmt: skip
    post = load_hook("post_gen_project", examples=examples)
    context = {k: v for k, v in post.CONTEXT.items() if k not in {"_output_dir", "_repo_dir"}}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "find_uv", lambda: pytest.fail("no uv under cruft"))
    example = tmp_path / "tests" / "agent" / "test_examples.py"
    example.parent.mkdir(parents=True)
    example.write_text("x = 1\n")
    assert post.main({**context, "_commit": "a" * 40}) == 0
    assert capsys.readouterr() == ("", "")
    assert example.exists() is examples
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tests"]


# ------------------------------------------------------------------------------ tables


def test_no_uv_and_no_driver_is_a_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    reason = tables.upgrade_command("my_chatkit_app", tmp_path)
    assert isinstance(reason, str) and "uv is not installed" in reason


def test_with_uv_runs_the_projects_own_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/bin/uv")
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setenv("VIRTUAL_ENV", "/elsewhere")
    command, env = tables.upgrade_command("my_chatkit_app", tmp_path)
    assert command[1:] == ["run", "--quiet", "python", "-m", "my_chatkit_app", "db", "upgrade"]
    assert "VIRTUAL_ENV" not in env


def test_failing_upgrade_is_one_warning_and_exit_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    post = load_hook("post_gen_project", database_url="postgresql://u:hunter2@h/db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tables, "create_tables", lambda *a: "cannot reach u:hunter2@h")
    monkeypatch.setattr(lock, "lock_dependencies", lambda *a: None)
    monkeypatch.setattr(lock, "uv_has_python", lambda *a: True)
    assert post.main(post.CONTEXT) == 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "uv run python -m my_chatkit_app db upgrade" in lines[0]
    assert "hunter2" not in captured.err + captured.out
    assert (tmp_path / ".env").exists() and (tmp_path / ".cruft.json").exists()


class FakeUv:
    """Stands in for uv: `uv lock` and `uv run` fail the way uv fails without a Python."""

    NO_PYTHON = (
        "error: No interpreter found for Python >=3.13 in managed installations or search path"
        "\n  cause: failed to lookup address information: Name or service not known"
    )

    def __init__(self, pythons: set[str], lock_ok: bool = False) -> None:
        self.pythons = pythons
        self.lock_ok = lock_ok
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(command[1:])
        if command[1:3] == ["python", "find"]:
            request = command[3]
            found = any(request in (v, f">={v}") or (request.startswith(">=") and v >= request[2:])
                        for v in self.pythons)  # fmt: skip
            return subprocess.CompletedProcess(command, 0 if found else 2, "", "")
        if command[1] == "lock" and self.lock_ok:
            return subprocess.CompletedProcess(command, 0, "", "")
        return subprocess.CompletedProcess(command, 2, "", self.NO_PYTHON)


@pytest.mark.parametrize("create_tables", [True, False])
def test_no_python_for_the_version_is_named_with_the_way_out(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    create_tables: bool,
) -> None:  # fmt: skip
    """uv's failure to find (or download) Python 3.13 is the cause, not its DNS error."""
    post = load_hook("post_gen_project", python_version="3.13", create_tables=create_tables)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "find_uv", lambda: "/bin/uv")
    fake = FakeUv({"3.11"})
    monkeypatch.setattr(subprocess, "run", fake)
    assert post.main(post.CONTEXT) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: uv found no Python 3.13 or newer on this machine"), line
    assert "install Python 3.13" in line and "python_version=3.11" in line, line
    later = "uv lock && uv run python -m my_chatkit_app db upgrade" if create_tables else "uv lock"
    assert line.endswith(f"then run: cd {tmp_path} && {later}"), line
    assert ("the tables were not created" in line) is create_tables
    assert not any(call[:1] == ["run"] for call in fake.calls), "no db upgrade without Python"


def test_db_upgrade_without_the_python_names_it_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The lock worked (a cached resolution, say) but `uv run` cannot find the Python."""
    post = load_hook("post_gen_project", python_version="3.12")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "find_uv", lambda: "/bin/uv")
    monkeypatch.setattr(subprocess, "run", FakeUv({"3.11"}, lock_ok=True))
    monkeypatch.setattr(tables, "stop_leftover_servers", lambda *a: None)
    assert post.main(post.CONTEXT) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: uv found no Python 3.12 or newer"), line
    assert "the tables were not created" in line and "uv.lock" not in line, line
    assert line.endswith("&& uv run python -m my_chatkit_app db upgrade"), line


def test_other_lock_failures_are_one_warning_and_the_rest_goes_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    post = load_hook("post_gen_project", create_tables=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "find_uv", lambda: "/bin/uv")
    monkeypatch.setattr(lock, "lock_dependencies", lambda *a: "uv lock failed: offline")
    monkeypatch.setattr(lock, "uv_has_python", lambda *a: True)
    assert post.main(post.CONTEXT) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"warning: no uv.lock was written (uv lock failed: offline). The project is ready; "
        f"write it later with: cd {tmp_path} && uv lock"
    ]
    assert (tmp_path / ".env").is_file() and (tmp_path / ".cruft.json").is_file()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("yes", True), ("no", False), ("False", False), ("y", True)],
)
def test_to_bool(post: types.ModuleType, value: object, expected: bool) -> None:
    assert post.to_bool(value) is expected
    assert common.to_bool(value) is expected


# ------------------------------------------------------------------------------ examples


def _example_files(post: types.ModuleType, root: Path, slug: str) -> list[Path]:
    return [root / pattern.format(slug=slug) for pattern in post.EXAMPLE_FILES]


def test_example_files_are_the_known_list(post: types.ModuleType) -> None:
    assert post.EXAMPLE_FILES == (
        "src/{slug}/agent/tools.py",
        "src/{slug}/agent/widgets.py",
        "src/{slug}/agent/clock.widget",
        "src/{slug}/agent/countdown.widget",
        "tests/agent/test_examples.py",
        "tests/agent/test_example_widgets.py",
    )


def test_remove_examples_deletes_only_the_example_files(
    post: types.ModuleType, tmp_path: Path
) -> None:
    examples = _example_files(post, tmp_path, "acme")
    keep = [tmp_path / "src" / "acme" / "agent" / "agent.py", tmp_path / "tests" / "test_api.py",
            tmp_path / "src" / "other" / "agent" / "tools.py"]  # fmt: skip
    for path in [*examples, *keep]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    removed = post.remove_examples(tmp_path, "acme")
    assert removed == [
        "src/acme/agent/tools.py", "src/acme/agent/widgets.py", "src/acme/agent/clock.widget",
        "src/acme/agent/countdown.widget", "tests/agent/test_examples.py",
        "tests/agent/test_example_widgets.py",
    ]  # fmt: skip
    assert not any(path.exists() for path in examples)
    assert all(path.is_file() for path in keep)
    assert (tmp_path / "src" / "acme").is_dir()


def test_remove_examples_accepts_missing_files(post: types.ModuleType, tmp_path: Path) -> None:
    assert post.remove_examples(tmp_path, "acme") == []
    (tmp_path / "tests" / "agent").mkdir(parents=True)
    (tmp_path / "tests" / "agent" / "test_examples.py").write_text("")
    assert post.remove_examples(tmp_path, "acme") == ["tests/agent/test_examples.py"]


@pytest.mark.parametrize(("answer", "kept"), [(True, True), (False, False), ("no", False)])
def test_main_removes_examples_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, answer: object, kept: bool
) -> None:
    post = load_hook("post_gen_project", examples=answer, create_tables=False)
    monkeypatch.chdir(tmp_path)
    examples = _example_files(post, tmp_path, "my_chatkit_app")
    for path in examples:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")
    assert post.main(post.CONTEXT) == 0
    assert [path.exists() for path in examples] == [kept] * len(examples)
    assert (tmp_path / ".env").is_file()


# ------------------------------------------------------------------------------ finding the modules


def test_the_modules_are_found_beside_the_template(
    post: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cookiecutter runs a rendered copy from the temp dir: the modules are found through
    `_repo_dir`, absolute or (as `cookiecutter .` gives it) relative to the shell's folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "getppid", os.getpid)  # cookiecutter's folder: here, not the template
    hooks = TEMPLATE / "hooks"
    assert post.hooks_dir({"_repo_dir": str(TEMPLATE)}) == hooks
    monkeypatch.setenv("PWD", str(TEMPLATE.parent))
    assert post.hooks_dir({"_repo_dir": TEMPLATE.name}).resolve() == hooks
    monkeypatch.setenv("PWD", str(TEMPLATE))
    assert post.hooks_dir({"_repo_dir": "."}).resolve() == hooks
    monkeypatch.setenv("PWD", str(tmp_path))
    assert post.hooks_dir({"_repo_dir": "."}) is None
    monkeypatch.chdir(TEMPLATE)  # on Linux, cookiecutter's own folder is the template
    assert post.hooks_dir({"_repo_dir": "."}) == hooks


def test_without_its_modules_the_hook_warns_once_and_keeps_the_project(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    post = load_hook("post_gen_project", _repo_dir=str(tmp_path), examples=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "getppid", os.getpid)
    monkeypatch.setenv("PWD", str(tmp_path))
    example = tmp_path / "tests" / "agent" / "test_examples.py"
    example.parent.mkdir(parents=True)
    example.write_text("x = 1\n")
    assert post.main(post.CONTEXT) == 0
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("warning: the template's hook modules were not found"), line
    assert "left out the examples (1 files)" in captured.out
    assert not example.exists()
