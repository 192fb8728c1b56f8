"""`cruft check`, `cruft diff` and `cruft update` on projects generated from a template URL
that is not a plain git URL: a cookiecutter abbreviation and a `git+file://` URL.

The template is a bare git repository made from this working tree; a second commit changes
the generated README, and cruft must see it, show it and apply it, without a word from the
hooks (cruft runs them when it renders the template).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bake import Baker, copy_template

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}
CHANGE = "A line the template's second commit adds."
# What the hooks say when they generate a project; cruft's renders must say none of it.
HOOK_CHATTER = (
    "  wrote .env (", "  kept the existing .env", "  recorded the answers in",
    "  pinned the dependencies", "uv is not installed", "  left out the examples (",
    "  skipped creating the tables", "  creating the tables", "warning: ", "error: ",
)  # fmt: skip


def run(*command: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "COOKIECUTTER_CONFIG"}}
    env.update(GIT_ENV, HOME=str(home))
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=300, check=False,
    )  # fmt: skip


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def cruft(*args: str, project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """The cruft of the template's dev environment (it runs the hooks on that Python)."""
    return run(str(Path(sys.executable).parent / "cruft"), *args, cwd=project, home=home)


@pytest.fixture
def bare_template(tmp_path: Path) -> tuple[Path, Path]:
    """(a work clone, its bare repository `templates/chatkit.git`) holding this template."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    home = tmp_path / "git-home"
    home.mkdir()
    work = tmp_path / "template-work"
    copy_template(work)
    ok(run("git", "init", "-q", "-b", "main", cwd=work, home=home))
    ok(run("git", "add", "-A", cwd=work, home=home))
    ok(run("git", "commit", "-q", "-m", "template", cwd=work, home=home))
    bare = tmp_path / "templates" / "chatkit.git"
    ok(run("git", "clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path, home=home))
    ok(run("git", "remote", "add", "bare", str(bare), cwd=work, home=home))
    return work, bare


def head(repo: Path, home: Path) -> str:
    return ok(run("git", "rev-parse", "HEAD", cwd=repo, home=home)).strip()


@pytest.mark.parametrize("how", ["abbreviation", "git+file"])
def test_cruft_check_diff_update(
    baker: Baker, tmp_path: Path, bare_template: tuple[Path, Path], how: str
) -> None:
    """`.cruft.json` records a URL git can clone; cruft check/diff/update work, quietly."""
    work, bare = bare_template
    if how == "abbreviation":  # `loc:chatkit`, from the user's cookiecutter config
        template = "loc:chatkit"
        config = f"abbreviations:\n  loc: {json.dumps(f'file://{bare.parent}/{{0}}.git')}\n"
        answers = ["create_tables=no"]
    else:  # with the examples left out, which the hook deletes again when cruft renders
        template, config, answers = f"git+file://{bare}", "", ["create_tables=no", "examples=no"]
    baked = baker(tmp_path / "bake", *answers, template=template, config=config)
    assert baked.result.returncode == 0, baked.output
    home, project = baked.home, baked.project
    recorded = baked.cruft()
    assert recorded["template"] == f"file://{bare}", recorded["template"]
    assert recorded["commit"] == head(bare, home)
    assert recorded["context"]["cookiecutter"]["_template"] == f"file://{bare}"

    ok(run("git", "init", "-q", "-b", "main", cwd=project, home=home))
    ok(run("git", "add", "-A", cwd=project, home=home))
    ok(run("git", "commit", "-q", "-m", "generated", cwd=project, home=home))
    check = cruft("check", project=project, home=home)
    assert check.returncode == 0, check.stdout + check.stderr
    nothing = ok(cruft("diff", "--exit-code", project=project, home=home))
    assert nothing.strip() == "", f"a fresh project differs from its template:\n{nothing}"

    readme = work / "{{cookiecutter.project_slug}}" / "README.md"
    readme.write_text(readme.read_text("utf-8") + f"\n{CHANGE}\n", "utf-8")
    ok(run("git", "commit", "-q", "-am", "a change", cwd=work, home=home))
    ok(run("git", "push", "-q", "bare", "main", cwd=work, home=home))

    behind = cruft("check", project=project, home=home)
    assert behind.returncode != 0, behind.stdout + behind.stderr
    # `cruft diff` compares the project with the template at its recorded commit;
    # `--checkout main` with the template's newest commit (what an update would bring)
    diff = cruft("diff", "--checkout", "main", project=project, home=home)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert f"+{CHANGE}" in diff.stdout
    changed = [line.split()[-1] for line in diff.stdout.splitlines() if line.startswith("+++ ")]
    assert changed == ["upstream-template-new/README.md"], diff.stdout
    update = cruft("update", "--skip-apply-ask", "--allow-untracked-files", project=project,
                   home=home)  # fmt: skip
    assert update.returncode == 0, update.stdout + update.stderr
    assert CHANGE in (project / "README.md").read_text("utf-8")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == head(bare, home)
    for said in (diff.stdout + diff.stderr, update.stdout + update.stderr):
        chatter = [line for line in said.splitlines() if line.startswith(HOOK_CHATTER)]
        assert chatter == [], said
    assert cruft("check", project=project, home=home).returncode == 0
