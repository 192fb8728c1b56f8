"""Unit tests of the pre-generation hook (rendered as cookiecutter renders it, then imported);
tests/test_post_hook.py has the post hook's."""

from __future__ import annotations

import ast
import json
import types
from pathlib import Path

import pytest
from post_gen import common

from tests.bake import TEMPLATE
from tests.hook_render import DEFAULTS, NASTY, load_hook


@pytest.fixture(scope="module")
def pre() -> types.ModuleType:
    return load_hook("pre_gen_project")


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
def test_password_removal(pre: types.ModuleType, url: str, stripped: str, redacted: str) -> None:
    for hook in (pre, common):
        assert hook.strip_password(url) == stripped
        assert hook.strip_password(url, mask="***") == redacted
    assert pre.has_password(url) == (url != stripped)


def _function_source(path: str, name: str) -> str:
    tree = ast.parse((TEMPLATE / "hooks" / path).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.unparse(node)


def test_both_hooks_share_one_strip_password() -> None:
    """The pre hook is one standalone script: it has a copy, kept the same."""
    assert _function_source("pre_gen_project.py", "strip_password") == _function_source(
        "post_gen/common.py", "strip_password"
    )


def test_the_post_hook_entry_shares_one_to_bool() -> None:
    """The post hook's entry reads `examples` before it finds its modules: a copy, the same."""
    assert _function_source("post_gen_project.py", "to_bool") == _function_source(
        "post_gen/common.py", "to_bool"
    )


def test_redact_text_hides_raw_and_decoded_password() -> None:
    url = "postgresql://u:p%40ss%2Fw0rd@h/db"
    text = f"failed for {url}: password p@ss/w0rd rejected"
    assert "p@ss/w0rd" not in common.redact_text(text, url)
    assert "p%40ss%2Fw0rd" not in common.redact_text(text, url)


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
