"""`.cruft.json`: the template (as a URL git can clone), its commit and the answers, without
the database password, so `cruft` can update the project later."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from post_gen.common import strip_password

# Recorded answers that are about this machine or this run, not about the project.
UNRECORDED = frozenset({"_output_dir", "_repo_dir", "__prompts__"})
CRUFT_SKIP = [".env", ".postgres", ".venv", ".cruft.json", "uv.lock"]

# cookiecutter's own (cookiecutter.config.BUILTIN_ABBREVIATIONS, repository.REPO_REGEX)
BUILTIN_ABBREVIATIONS = {
    "gh": "https://github.com/{0}.git",
    "gl": "https://gitlab.com/{0}.git",
    "bb": "https://bitbucket.org/{0}",
}
REPO_URL = re.compile(r"((((git|hg)\+)?(git|ssh|file|https?):(//)?)|(\w+@[\w\.]+))")


def expand_abbreviations(template: str, abbreviations: dict[str, str]) -> str:
    """`gh:OWNER/REPO` as `https://github.com/OWNER/REPO.git`: cookiecutter's
    `repository.expand_abbreviations`, line for line (the hook tests compare them)."""
    if template in abbreviations:
        return abbreviations[template]
    prefix, _sep, rest = template.partition(":")
    if prefix in abbreviations:
        return abbreviations[prefix].format(rest)
    return template


def config_args_from_parent() -> tuple[str | None, bool]:
    """`--config-file` and `--default-config` of the cookiecutter command running this hook
    (read on Linux; elsewhere cookiecutter's COOKIECUTTER_CONFIG and ~/.cookiecutterrc apply)."""
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
        args = [arg.decode("utf-8", "replace") for arg in raw.split(b"\0")]
        config = None
        for index, arg in enumerate(args):
            if arg == "--config-file" and index + 1 < len(args):
                config = args[index + 1]
            elif arg.startswith("--config-file="):
                config = arg.partition("=")[2]
        return config, "--default-config" in args
    return None, False


def user_abbreviations() -> dict[str, str]:
    """The abbreviations cookiecutter used: the user's configured ones and the builtins."""
    config_file, default_config = config_args_from_parent()
    with contextlib.suppress(Exception):
        from cookiecutter.config import get_user_config

        found = get_user_config(config_file=config_file, default_config=default_config)
        return {**BUILTIN_ABBREVIATIONS, **dict(found.get("abbreviations") or {})}
    return dict(BUILTIN_ABBREVIATIONS)


def clonable(url: str) -> str:
    """The URL git clones: cookiecutter strips a `git+` (or `hg+`) prefix before cloning."""
    kind, plus, rest = url.partition("+")
    return rest if plus and kind in {"git", "hg"} and "+" not in rest else url


def origin_url(repo_dir: Path | None) -> str | None:
    """The URL cookiecutter cloned the template from (its clone's `origin`), if it cloned."""
    git = shutil.which("git")
    if not git or repo_dir is None or not (repo_dir / ".git").exists():
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [git, "-C", str(repo_dir), "remote", "get-url", "origin"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return None


def template_location(
    template: str,
    parent_cwd: Path | None,
    abbreviations: dict[str, str] | None = None,
    repo_dir: Path | None = None,
) -> str:
    """Where the template lives, in a form `git clone` (and so cruft) understands: a URL with
    abbreviations expanded the way cookiecutter expands them and no `git+` prefix, or an
    absolute path for a local template."""
    expanded = expand_abbreviations(template, abbreviations or BUILTIN_ABBREVIATIONS)
    if REPO_URL.match(expanded):
        return clonable(expanded)
    if re.match(r"[A-Za-z][\w.+-]+:", expanded):
        # an abbreviation this hook could not see (a --config-file off Linux): ask the clone
        return origin_url(repo_dir) or expanded
    if os.path.isabs(expanded) or expanded.endswith(".zip"):
        return expanded
    # cookiecutter runs hooks from inside the template folder: its cwd is the template.
    if parent_cwd and (parent_cwd / "cookiecutter.json").is_file():
        return str(parent_cwd)
    return expanded


def parent_cwd() -> Path | None:
    """The working directory of the cookiecutter process that runs this hook (Linux only)."""
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/{os.getppid()}/cwd"))
    return None


def template_commit(repo_dir: Path | None) -> str | None:
    """The template's git commit, when it is a git checkout and git is installed."""
    git = shutil.which("git")
    if not git or repo_dir is None or not repo_dir.is_dir():
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [git, "-C", str(repo_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        commit = done.stdout.strip()
        if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit):
            return commit
    return None


def recorded_answers(context: dict[str, object], template: str, commit: str | None) -> dict:
    """The `.cruft.json` content: answers without secrets, ready for `cruft update`."""
    answers = {key: value for key, value in context.items() if key not in UNRECORDED}
    answers["database_url"] = strip_password(str(context.get("database_url", "")))
    # Creating tables is something generation did once, not a property of the project: a
    # later `cruft update` must never touch a database.
    answers["create_tables"] = False
    answers["_template"] = template
    return {
        "template": template,
        "commit": commit,
        "checkout": context.get("_checkout"),
        "context": {"cookiecutter": answers},
        "directory": None,
        "skip": CRUFT_SKIP,
    }


def write_answers(project_dir: Path, context: dict[str, object]) -> Path:
    """Write `.cruft.json` next to the project's files."""
    cwd = parent_cwd()
    repo_dir = Path(str(context.get("_repo_dir", "")))
    if not repo_dir.is_absolute():
        repo_dir = cwd if cwd and (cwd / "cookiecutter.json").is_file() else repo_dir.resolve()
    template = template_location(
        str(context.get("_template", "")), cwd, user_abbreviations(), repo_dir
    )
    data = recorded_answers(context, template, template_commit(repo_dir))
    path = project_dir / ".cruft.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
