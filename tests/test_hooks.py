"""Unit tests of the hooks: rendered the way cookiecutter renders them, then imported."""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import types
from pathlib import Path

import pytest
from cookiecutter.environment import StrictEnvironment
from dotenv import dotenv_values

from tests.bake import TEMPLATE

DEFAULTS = {
    **{k: v for k, v in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()},
    "project_slug": "my_chatkit_app",
    "python_version": "3.11",
    "_template": "/somewhere/template",
    "_output_dir": "/somewhere/out",
    "_repo_dir": "/somewhere/template",
    "_checkout": None,
}


def load_hook(name: str, **answers: object) -> types.ModuleType:
    """Render hooks/<name>.py with Jinja and a cookiecutter context, then import it."""
    context = {**DEFAULTS, **answers}
    source = (TEMPLATE / "hooks" / f"{name}.py").read_text()
    env = StrictEnvironment(context={"cookiecutter": context})
    rendered = env.from_string(source).render(cookiecutter=context)
    module = types.ModuleType(name)
    module.__file__ = f"/rendered/{name}.py"
    exec(compile(rendered, module.__file__, "exec"), module.__dict__)  # noqa: S102
    return module


@pytest.fixture(scope="module")
def pre() -> types.ModuleType:
    return load_hook("pre_gen_project")


@pytest.fixture(scope="module")
def post() -> types.ModuleType:
    return load_hook("post_gen_project")


NASTY = 'Tom\'s "Chat" """ \'\'\' $(touch /tmp/pwned) `id`; \\n {{ x }} — 🚀 ünïcödé'


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_answers_reach_the_hook_verbatim(hook: str) -> None:
    module = load_hook(hook, project_name=NASTY, description=NASTY, author_name=NASTY)
    assert module.CONTEXT["project_name"] == NASTY
    assert module.CONTEXT["description"] == NASTY
    assert not Path("/tmp/pwned").exists()


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("slug", ["my_app", "acme2", "a", "support_chat_v2", "match"])
def test_good_slugs(pre: types.ModuleType, slug: str) -> None:
    pre.validate_slug(slug)


@pytest.mark.parametrize(
    ("slug", "why"),
    [
        ("My_App", "lower-case"),
        ("1app", "lower-case"),
        ("my-app", "lower-case"),
        ("my app", "lower-case"),
        ("", "lower-case"),
        ("café", "lower-case"),
        ("class", "keyword"),
        ("import", "keyword"),
        ("json", "standard library"),
        ("asyncio", "standard library"),
        ("email", "standard library"),
        ("chatkit", "imports"),
        ("agents", "imports"),
        ("openai", "imports"),
        ("fastapi", "imports"),
        ("psycopg", "imports"),
        ("jwt", "imports"),
        ("tests", "imports"),
        ("test", "standard library"),
        ("x" * 65, "longer"),
    ],
)
def test_bad_slugs(pre: types.ModuleType, slug: str, why: str) -> None:
    with pytest.raises(pre.InvalidAnswer) as caught:
        pre.validate_slug(slug)
    message = str(caught.value)
    assert message.startswith("project_slug: ")
    assert why in message
    assert "allowed:" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "url",
    [
        "embedded",
        "postgresql://user:pw@db.example.com:5432/app",
        "postgres://db.example.com/app",
        "postgresql://user@localhost/app?sslmode=require",
        "postgresql:///app?host=/var/run/postgresql",
        "postgresql://u:p%40ss@[::1]:5432/app",
    ],
)
def test_good_database_urls(pre: types.ModuleType, url: str) -> None:
    pre.validate_database_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "embeded",
        "Embedded",
        "mysql://u:hunter2@h/db",
        "postgresql://",
        "postgresql:///app",
        "postgresql://u:hunter2@h:notaport/db",
        "postgresql://u:hunter2@h:99999/db",
        "postgresql://u:hunter2@h /db",
        "localhost:5432/db",
        "sqlite:///x.db",
    ],
)
def test_bad_database_urls(pre: types.ModuleType, url: str) -> None:
    with pytest.raises(pre.InvalidAnswer) as caught:
        pre.validate_database_url(url)
    message = str(caught.value)
    assert message.startswith("database_url: ")
    assert "hunter2" not in message
    assert "allowed:" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "model", ["gpt-4.1", "gpt-4o-mini", "ft:gpt-4o:acme:x:abc123", "meta-llama/Llama-3-8B", "q:7b"]
)
def test_good_models(pre: types.ModuleType, model: str) -> None:
    pre.validate_model(model)


@pytest.mark.parametrize("model", ["", " ", "gpt 4", "gpt-4\n", "$(rm -rf)", "a;b", "'x'", "-x"])
def test_bad_models(pre: types.ModuleType, model: str) -> None:
    with pytest.raises(pre.InvalidAnswer, match=r"^model: .*allowed: "):
        pre.validate_model(model)


def test_free_text_is_one_line(pre: types.ModuleType) -> None:
    pre.validate_text("description", NASTY.replace("\\n", ""), required=False)
    with pytest.raises(pre.InvalidAnswer, match=r"^description: "):
        pre.validate_text("description", "two\nlines", required=False)
    with pytest.raises(pre.InvalidAnswer, match=r"^project_name: "):
        pre.validate_text("project_name", "  ", required=True)


@pytest.mark.parametrize(
    "answer, start",
    [
        ({"database_url": "mysql://u:hunter2@h/db"}, "error: database_url: "),
        ({"examples": "maybe"}, 'error: examples: "maybe" '),
    ],
    ids=["database_url", "examples"],
)
def test_main_reports_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    answer: dict[str, str],
    start: str,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    pre = load_hook("pre_gen_project", **answer)
    assert pre.main(pre.CONTEXT) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(start)
    assert "hunter2" not in err


def test_every_bad_answer_is_reported_at_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Several bad answers: one `error:` line for each, in prompt order, then exit 1."""
    monkeypatch.setenv("HOME", str(tmp_path))
    pre = load_hook(
        "pre_gen_project", project_slug="json", model="gpt 4", examples="maybe",
        database_url="mysql://u:hunter2@h/db", python_version="3.9",
    )  # fmt: skip
    assert pre.main(pre.CONTEXT) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":", 2)[1].strip() for line in lines] == [
        "project_slug",
        "model",
        "database_url",
        "examples",
        "python_version",
    ], lines
    assert all(line.startswith("error: ") and "allowed: " in line for line in lines), lines
    assert "hunter2" not in "\n".join(lines)


def test_good_answers_validate_clean(pre: types.ModuleType) -> None:
    assert pre.validate(pre.CONTEXT) == []


# ------------------------------------------------------------------------------ passwords


@pytest.mark.parametrize(
    ("url", "stripped", "redacted"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgres://u:p@ss@h:5/d?sslmode=require", "postgres://u@h:5/d?sslmode=require",
         "postgres://u:***@h:5/d?sslmode=require"),
        ("postgresql://u:pa/ss?x#@host/db", "postgresql://u@host/db", "postgresql://u:***@host/db"),
        ("postgresql:///d?host=/s&password=zz&user=u", "postgresql:///d?host=/s&user=u",
         "postgresql:///d?host=/s&password=***&user=u"),
        ("postgresql://h/d?x=a:b@c", "postgresql://h/d?x=a:b@c", "postgresql://h/d?x=a:b@c"),
        ("embedded", "embedded", "embedded"),
    ],
)  # fmt: skip
def test_password_removal(
    pre: types.ModuleType, post: types.ModuleType, url: str, stripped: str, redacted: str
) -> None:
    for hook in (pre, post):
        assert hook.strip_password(url) == stripped
        assert hook.strip_password(url, mask="***") == redacted
    assert pre.has_password(url) == (url != stripped)


def _function_source(hook: str, name: str) -> str:
    tree = ast.parse((TEMPLATE / "hooks" / f"{hook}.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.unparse(node)


def test_both_hooks_share_one_strip_password() -> None:
    assert _function_source("pre_gen_project", "strip_password") == _function_source(
        "post_gen_project", "strip_password"
    )


def test_redact_text_hides_raw_and_decoded_password(post: types.ModuleType) -> None:
    url = "postgresql://u:p%40ss%2Fw0rd@h/db"
    text = f"failed for {url}: password p@ss/w0rd rejected"
    assert "p@ss/w0rd" not in post.redact_text(text, url)
    assert "p%40ss%2Fw0rd" not in post.redact_text(text, url)


def _replay(directory: Path, name: str, url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    answers = {"project_name": "x", "database_url": url}
    path.write_text(json.dumps({"cookiecutter": answers, "_cookiecutter": dict(answers)}))
    return path


def test_scrub_replay_files(pre: types.ModuleType, tmp_path: Path) -> None:
    url = "postgresql://u:hunter2@h/db"
    mine = _replay(tmp_path, "template", url)
    other = _replay(tmp_path, "other", "postgresql://v:keep@h/db")
    (tmp_path / "broken.json").write_text("{not json")
    assert pre.scrub_replay_files(url, [tmp_path, tmp_path / "missing"]) == []
    data = json.loads(mine.read_text())
    assert data["cookiecutter"]["database_url"] == "postgresql://u@h/db"
    assert data["_cookiecutter"]["database_url"] == "postgresql://u@h/db"
    assert "keep" in other.read_text()


def test_replay_dirs_follow_cookiecutter_config(
    pre: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'elsewhere'}\n")
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    dirs = pre.replay_dirs()
    assert tmp_path / "elsewhere" in dirs
    assert tmp_path / "home" / ".cookiecutter_replay" in dirs


def test_rendered_copy_in_tempdir_is_removed(
    pre: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    copy = tmp_path / "tmpabc123.py"
    copy.write_text("secret")
    keep = tmp_path / "pre_gen_project.py"
    keep.write_text("template")
    pre.remove_own_rendered_copy(str(copy))
    pre.remove_own_rendered_copy(str(keep))
    assert not copy.exists()
    assert keep.exists()


# ------------------------------------------------------------------------------ .env


@pytest.mark.parametrize(
    "value",
    ["embedded", "gpt-4.1", "postgresql://u:p%40ss@h:5432/db?sslmode=require&x=1",
     "postgresql://u:it's #not $HOME\\x@h/db", "sk-abc_DEF-123", ""],
)  # fmt: skip
def test_env_values_round_trip_through_dotenv(
    post: types.ModuleType, tmp_path: Path, value: str
) -> None:
    path = tmp_path / ".env"
    path.write_text(f"KEY={post.env_value(value)}\n")
    assert dotenv_values(path)["KEY"] == value


def test_env_file(post: types.ModuleType, tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        text = post.env_file_text(post.CONTEXT, "", "s" * 64)
        assert post.write_env(tmp_path, text)
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
    assert not post.write_env(tmp_path, "DIFFERENT=1\n")
    assert dotenv_values(path)["AUTH_SECRET"] == "s" * 64


# ------------------------------------------------------------------------------ answers


def test_recorded_answers_carry_no_password(tmp_path: Path) -> None:
    post = load_hook("post_gen_project", database_url="postgresql://u:hunter2@h/db")
    data = post.recorded_answers(post.CONTEXT, "/t", "a" * 40)
    answers = data["context"]["cookiecutter"]
    assert "hunter2" not in json.dumps(data)
    assert answers["database_url"] == "postgresql://u@h/db"
    assert answers["create_tables"] is False
    assert "_output_dir" not in answers and "_repo_dir" not in answers
    assert data["template"] == "/t" and data["commit"] == "a" * 40
    assert ".env" in data["skip"]


def test_template_location(post: types.ModuleType, tmp_path: Path) -> None:
    """What `.cruft.json` records is something `git clone` (and so cruft) understands."""
    (tmp_path / "cookiecutter.json").write_text("{}")
    mine = {**post.BUILTIN_ABBREVIATIONS, "loc": "file:///srv/templates/{0}.git"}
    assert post.template_location(".", tmp_path) == str(tmp_path)
    assert post.template_location("gh:acme/tpl", tmp_path) == "https://github.com/acme/tpl.git"
    assert post.template_location("gl:acme/tpl", tmp_path) == "https://gitlab.com/acme/tpl.git"
    assert post.template_location("bb:acme/tpl", tmp_path) == "https://bitbucket.org/acme/tpl"
    assert post.template_location("loc:tpl", tmp_path, mine) == "file:///srv/templates/tpl.git"
    assert post.template_location("git+file:///srv/t.git", tmp_path) == "file:///srv/t.git"
    assert post.template_location("git+https://x/y.git", tmp_path) == "https://x/y.git"
    assert post.template_location("git+ssh://git@x/y.git", tmp_path) == "ssh://git@x/y.git"
    assert post.template_location("git@github.com:a/b.git", tmp_path) == "git@github.com:a/b.git"
    assert post.template_location("https://x/y.git", tmp_path) == "https://x/y.git"
    assert post.template_location("/abs/tpl", tmp_path) == "/abs/tpl"


def test_an_abbreviation_the_hook_cannot_see_comes_from_the_clone(
    post: types.ModuleType, tmp_path: Path
) -> None:
    """Off Linux the hook cannot read `--config-file`; the clone's origin is the URL."""
    clone = tmp_path / "clone"
    clone.mkdir()
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    subprocess.run(["git", "remote", "add", "origin", "file:///srv/t.git"], cwd=clone, check=True)
    assert post.template_location("mine:t", tmp_path, None, clone) == "file:///srv/t.git"


@pytest.mark.parametrize(
    "template", ["gh:a/b", "gl:a/b", "bb:a/b", "loc:x", "loc", "gh", "https://x/y", "./t", "a:b:c"]
)
def test_abbreviations_expand_like_cookiecutter(post: types.ModuleType, template: str) -> None:
    """The hook's copies of cookiecutter's abbreviations, expansion and repo-URL test agree."""
    from cookiecutter.config import BUILTIN_ABBREVIATIONS
    from cookiecutter.repository import expand_abbreviations, is_repo_url

    mine = {**BUILTIN_ABBREVIATIONS, "loc": "file:///t/{0}.git"}
    assert post.BUILTIN_ABBREVIATIONS == BUILTIN_ABBREVIATIONS
    expanded = post.expand_abbreviations(template, mine)
    assert expanded == expand_abbreviations(template, mine)
    assert bool(post.REPO_URL.match(expanded)) == is_repo_url(expanded)


def test_user_abbreviations_come_from_the_cookiecutter_config(
    post: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text('abbreviations:\n  loc: "file:///t/{0}.git"\n')
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
    monkeypatch.setattr(post, "config_args_from_parent", lambda: (None, False))
    found = post.user_abbreviations()
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
    monkeypatch.setattr(post, "find_uv", lambda: pytest.fail("no uv under cruft"))
    example = tmp_path / "tests" / "agent" / "test_examples.py"
    example.parent.mkdir(parents=True)
    example.write_text("x = 1\n")
    assert post.main({**context, "_commit": "a" * 40}) == 0
    assert capsys.readouterr() == ("", "")
    assert example.exists() is examples
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tests"]


# ------------------------------------------------------------------------------ tables


def test_no_uv_and_no_driver_is_a_reason(
    post: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(post.shutil, "which", lambda name: None)
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setattr(post.importlib.util, "find_spec", lambda name: None)
    reason = post.upgrade_command("my_chatkit_app", tmp_path)
    assert isinstance(reason, str) and "uv is not installed" in reason


def test_with_uv_runs_the_projects_own_command(
    post: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(post.shutil, "which", lambda name: "/bin/uv")
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setenv("VIRTUAL_ENV", "/elsewhere")
    command, env = post.upgrade_command("my_chatkit_app", tmp_path)
    assert command[1:] == ["run", "--quiet", "python", "-m", "my_chatkit_app", "db", "upgrade"]
    assert "VIRTUAL_ENV" not in env


def test_failing_upgrade_is_one_warning_and_exit_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    post = load_hook("post_gen_project", database_url="postgresql://u:hunter2@h/db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(post, "create_tables", lambda *a: "cannot reach u:hunter2@h")
    monkeypatch.setattr(post, "lock_dependencies", lambda *a: None)
    monkeypatch.setattr(post, "uv_has_python", lambda *a: True)
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
    monkeypatch.setattr(post, "find_uv", lambda: "/bin/uv")
    fake = FakeUv({"3.11"})
    monkeypatch.setattr(post.subprocess, "run", fake)
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
    monkeypatch.setattr(post, "find_uv", lambda: "/bin/uv")
    monkeypatch.setattr(post.subprocess, "run", FakeUv({"3.11"}, lock_ok=True))
    monkeypatch.setattr(post, "stop_leftover_servers", lambda *a: None)
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
    monkeypatch.setattr(post, "find_uv", lambda: "/bin/uv")
    monkeypatch.setattr(post, "lock_dependencies", lambda *a: "uv lock failed: offline")
    monkeypatch.setattr(post, "uv_has_python", lambda *a: True)
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


@pytest.mark.parametrize("value", [True, False, "yes", "no", "True", "false", "Y", "n", "on", "0"])
def test_good_booleans(pre: types.ModuleType, value: object) -> None:
    for name in pre.BOOLEANS:
        pre.validate_bool(name, value)


@pytest.mark.parametrize("value", ["maybe", "", "2", "yess", None, 1, ["yes"]])
def test_bad_booleans(pre: types.ModuleType, value: object) -> None:
    with pytest.raises(pre.InvalidAnswer) as caught:
        pre.validate_bool("examples", value)
    message = str(caught.value)
    assert message.startswith("examples: ")
    assert "allowed: yes or no" in message
    assert "\n" not in message


def test_every_yes_no_prompt_is_validated(pre: types.ModuleType) -> None:
    booleans = {key for key, value in DEFAULTS.items() if isinstance(value, bool)}
    assert booleans == set(pre.BOOLEANS) == {"create_tables", "chat_page", "examples"}


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
