"""Finish the generated project: `.env`, recorded answers, and the database tables.

Runs on cookiecutter's own interpreter (under `uvx` only cookiecutter's dependencies exist), so
it uses the standard library only. It never fails the generation: whatever goes wrong with the
database is one warning line naming the command that finishes the job later, and exit 0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

CONTEXT: dict[str, object] = json.loads({{ cookiecutter | tojson | tojson }})  # noqa: F821  # fmt: skip

EMBEDDED = "embedded"
UPGRADE_TIMEOUT = 900
LOCK_TIMEOUT = 300
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
SAFE_ENV_VALUE = re.compile(r"[A-Za-z0-9_./:@%+=,-]*")
# Recorded answers that are about this machine or this run, not about the project.
UNRECORDED = frozenset({"_output_dir", "_repo_dir", "__prompts__"})
CRUFT_SKIP = [".env", ".postgres", ".venv", ".cruft.json", "uv.lock"]
# The example tools, widgets (and their ChatKit Studio `.widget` files), actions and client
# tool live in these files of the project (the slug written as {slug}); they are deleted when
# `examples` is no. The lines that use them in other files are inside Jinja
# `if cookiecutter.examples` blocks of those templates.
EXAMPLE_FILES = (
    "src/{slug}/agent/tools.py",
    "src/{slug}/agent/widgets.py",
    "src/{slug}/agent/clock.widget",
    "src/{slug}/agent/countdown.widget",
    "tests/agent/test_examples.py",
    "tests/agent/test_example_widgets.py",
)


def say(message: str) -> None:
    """One short progress line."""
    print(f"  {message}", flush=True)


def strip_password(url: str, mask: str = "") -> str:
    """`url` with any password removed (or replaced by `mask`); works on URLs that don't parse."""
    scheme_end = url.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    at = url.rfind("@")
    host_start = start
    if scheme_end >= 0 and at > start:
        user, colon, _password = url[start:at].partition(":")
        if not re.search(r"[/?#]", user):
            userinfo = (f"{user}:{mask}" if mask else user) if colon else user
            url = url[:start] + userinfo + url[at:]
            host_start = start + len(userinfo) + 1
    base, question, rest = url[host_start:].partition("?")
    base = url[:host_start] + base
    if not question:
        return base
    query, hash_mark, fragment = rest.partition("#")
    params = []
    for param in query.split("&"):
        if param.partition("=")[0].lower() != "password":
            params.append(param)
        elif mask:
            params.append(f"{param.partition('=')[0]}={mask}")
    query = "&".join(params)
    return base + ("?" + query if query else "") + hash_mark + fragment


def passwords_of(url: str) -> set[str]:
    """The password(s) `url` carries (user info and `password=`), raw and percent-decoded."""
    found = set(re.findall(r"[?&]password=([^&#]*)", url, flags=re.IGNORECASE))
    userinfo = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#:@]*):(.*)@", url)
    if userinfo:
        found.add(userinfo.group(2))
    return {form for password in found for form in (password, unquote(password)) if form}


def redact_text(text: str, url: str) -> str:
    """`text` with every password of `url` replaced by `***`."""
    for password in sorted(passwords_of(url), key=len, reverse=True):
        text = text.replace(password, "***")
    return text


def to_bool(value: object) -> bool:
    """A cookiecutter boolean answer (native bool, or yes/no text from older contexts)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "t", "yes", "y", "on"}


def remove_own_rendered_copy(script: str) -> None:
    """Delete the rendered copy of this hook cookiecutter left in the temp dir (it holds the
    answers, a database password included)."""
    path = Path(script).resolve()
    with contextlib.suppress(OSError):
        if path.parent == Path(tempfile.gettempdir()).resolve() and path.name.startswith("tmp"):
            path.unlink()


# ---------------------------------------------------------------------------------------------
# Examples


def remove_examples(project_dir: Path, slug: str) -> list[str]:
    """Delete the example files (EXAMPLE_FILES) from the project; the ones that were there."""
    removed = []
    for pattern in EXAMPLE_FILES:
        relative = pattern.format(slug=slug)
        path = project_dir / relative
        if path.is_file():
            path.unlink()
            removed.append(relative)
    return removed


# ---------------------------------------------------------------------------------------------
# .env


def env_value(value: str) -> str:
    """A value for a .env line: bare when plain, else single-quoted (never interpolated)."""
    if SAFE_ENV_VALUE.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def env_file_text(context: dict[str, object], api_key: str, auth_secret: str) -> str:
    """The contents of `.env` for these answers."""
    key_help = (
        "# Taken from OPENAI_API_KEY in your environment when the project was generated."
        if api_key
        else "# Your OpenAI API key: create one at https://platform.openai.com/api-keys and put "
        "it here\n# (or set OPENAI_API_KEY in the environment). The app starts without it."
    )
    return "\n".join(
        [
            "# Local settings and secrets. Never commit this file (it is in .gitignore).",
            "# .env.example lists every setting.",
            "# embedded = a development PostgreSQL kept in .postgres/ inside this project.",
            f"DATABASE_URL={env_value(str(context['database_url']))}",
            f"OPENAI_MODEL={env_value(str(context['model']))}",
            key_help,
            f"OPENAI_API_KEY={env_value(api_key)}",
            "# Signs the users' bearer tokens (HS256). Keep it secret; changing it logs "
            "everyone out.",
            f"AUTH_SECRET={env_value(auth_secret)}",
            "",
        ]
    )


def write_env(project_dir: Path, text: str) -> bool:
    """Create `.env` with mode 0600; False (and untouched) when it already exists."""
    path = project_dir / ".env"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    return True


# ---------------------------------------------------------------------------------------------
# Recorded answers (.cruft.json)


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


# ---------------------------------------------------------------------------------------------
# Tables


def upgrade_hint(slug: str) -> str:
    """The exact command that creates the tables later."""
    return f"uv run python -m {slug} db upgrade"


def last_line(text: str) -> str:
    """The last non-empty line of a command's output, shortened."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def find_uv() -> str | None:
    """uv: the one running cookiecutter (`uvx` exports its path as UV), else on PATH."""
    exported = os.environ.get("UV", "")
    if exported and os.access(exported, os.X_OK):
        return exported
    return shutil.which("uv")


def upgrade_command(slug: str, project_dir: Path) -> tuple[list[str], dict[str, str]] | str:
    """How to run `db upgrade` here, or the reason it can't run."""
    env = uv_env()
    uv = find_uv()
    if uv:
        return [uv, "run", "--quiet", "python", "-m", slug, "db", "upgrade"], env
    if importlib.util.find_spec("psycopg") is None:
        return "uv is not installed and cookiecutter's Python has no psycopg driver"
    env["PYTHONPATH"] = str(project_dir / "src")
    return [sys.executable, "-m", slug, "db", "upgrade"], env


def stop_leftover_servers(project_dir: Path) -> None:
    """Stop an embedded PostgreSQL still running from `.postgres/` (the hook leaves none)."""
    for pid_file in (project_dir / ".postgres").glob("**/postmaster.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.2)


def create_tables(slug: str, project_dir: Path, url: str) -> str | None:
    """Run the project's `db upgrade`; returns a warning reason, or None on success."""
    how = upgrade_command(slug, project_dir)
    if isinstance(how, str):
        return how
    command, env = how
    where = "the embedded database in .postgres/" if url == EMBEDDED else strip_password(url)
    runner = "uv run" if Path(command[0]).name.startswith("uv") else "python"
    say(f"creating the tables in {where} ({runner} ... -m {slug} db upgrade; a first run "
        "installs the project's environment, this can take a minute)")  # fmt: skip
    try:
        done = subprocess.run(
            command,
            cwd=project_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=UPGRADE_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"db upgrade did not finish within {UPGRADE_TIMEOUT} s"
    except OSError as exc:
        return f"could not run {command[0]}: {exc.strerror or exc}"
    finally:
        if url == EMBEDDED:
            stop_leftover_servers(project_dir)
    if done.returncode != 0:
        reason = last_line(done.stderr) or last_line(done.stdout) or f"exit {done.returncode}"
        return f"db upgrade failed: {reason}"
    summary = last_line(done.stdout)
    say("tables created" + (f": {summary}" if summary else ""))
    return None


def warn_tables(reason: str, slug: str, project_dir: Path, url: str) -> None:
    """The one warning line for tables that could not be created."""
    message = (
        f"warning: the tables were not created ({reason}). The project is ready; create them "
        f"later with: cd {project_dir} && {upgrade_hint(slug)}"
    )
    print(redact_text(message, url), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The lock file, and a Python that uv cannot find


def uv_env() -> dict[str, str]:
    """The environment for uv in the project: its own .venv, not cookiecutter's."""
    return {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}


def lock_dependencies(uv: str, project_dir: Path) -> str | None:
    """`uv lock`: pin every dependency in uv.lock; returns a warning reason, or None."""
    try:
        done = subprocess.run(
            [uv, "lock", "--quiet"], cwd=project_dir, env=uv_env(), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=LOCK_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"uv lock did not finish within {LOCK_TIMEOUT} s"
    except OSError as exc:
        return f"could not run {uv}: {exc.strerror or exc}"
    if done.returncode != 0:
        return f"uv lock failed: {last_line(done.stderr) or last_line(done.stdout)}"
    say("pinned the dependencies in uv.lock (commit it; CI installs with uv sync --locked)")
    return None


def uv_has_python(uv: str, request: str, project_dir: Path) -> bool:
    """Whether uv finds an installed Python for `request` (never downloading one)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [uv, "python", "find", request], cwd=project_dir,
            env={**uv_env(), "UV_PYTHON_DOWNLOADS": "never"}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        return done.returncode == 0
    return False


def missing_python(uv: str, version: str, project_dir: Path, reason: str) -> tuple[str, str] | None:
    """When a uv command failed (`reason`) because there is no Python `version` or newer
    here and none could be downloaded: (the cause, the way out) for the warning; else None."""
    if uv_has_python(uv, f">={version}", project_dir):
        return None
    older = [v for v in SUPPORTED_PYTHONS if version_key(v) < version_key(version)]
    usable = next((v for v in reversed(older) if uv_has_python(uv, v, project_dir)), None)
    uv_said = reason.partition(" failed: ")[2] or reason
    cause = (
        f"uv found no Python {version} or newer on this machine and did not download one "
        f"({uv_said})"
    )
    way_out = f"install Python {version} (e.g. `uv python install {version}`)"
    if usable:
        way_out += f", or regenerate with python_version={usable}"
    return cause, way_out


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def regenerating(context: dict[str, object]) -> bool:
    """Whether cruft is regenerating the template (`cruft diff`/`cruft update` render it into
    a temp dir): its context has the `_commit` cruft adds and none of cookiecutter's
    `_output_dir`."""
    return "_commit" in context and "_output_dir" not in context


# ---------------------------------------------------------------------------------------------


def main(context: dict[str, object]) -> int:
    """Write `.env`, `.cruft.json` and uv.lock, then create the tables; always returns 0."""
    remove_own_rendered_copy(sys.argv[0])
    project_dir = Path.cwd()
    slug = str(context["project_slug"])
    url = str(context["database_url"])
    if regenerating(context):
        # cruft diff/update: the same files as a fresh generation would have (its skip list
        # covers .env, .cruft.json and uv.lock), and not a word on their output
        if not to_bool(context.get("examples", True)):
            with contextlib.suppress(OSError):
                remove_examples(project_dir, slug)
        return 0
    if not to_bool(context.get("examples", True)):
        try:
            removed = remove_examples(project_dir, slug)
            say(f"left out the examples ({len(removed)} files)")
        except OSError as exc:  # the project is kept whatever happens
            print(f"warning: could not remove the example files: {exc}", file=sys.stderr)
    try:
        text = env_file_text(context, os.environ.get("OPENAI_API_KEY", ""),
                             secrets.token_urlsafe(48))  # fmt: skip
        if write_env(project_dir, text):
            say("wrote .env (mode 0600: database URL, model, API key, a fresh AUTH_SECRET)")
        else:
            say("kept the existing .env")
        say(f"recorded the answers in {write_answers(project_dir, context).name} (for cruft)")
    except Exception as exc:  # the project is kept whatever happens
        print(redact_text(f"warning: could not finish the project files: {exc}", url),
              file=sys.stderr)  # fmt: skip
    try:
        finish_with_uv(context, project_dir, slug, url)
    except Exception as exc:  # the project is kept whatever happens
        warn_tables(f"{type(exc).__name__}: {exc}", slug, project_dir, url)
    return 0


def finish_with_uv(context: dict[str, object], project_dir: Path, slug: str, url: str) -> None:
    """uv.lock, then the tables; one warning line for whatever could not be done."""
    version = str(context.get("python_version", "3.11"))
    wanted = to_bool(context.get("create_tables", True))
    uv = find_uv()
    python_problem = None
    not_done: list[str] = []
    later: list[str] = []
    if uv is None:
        say("uv is not installed: no uv.lock yet (run `uv lock` in the project once it is)")
    else:
        reason = lock_dependencies(uv, project_dir)
        if reason:
            python_problem = missing_python(uv, version, project_dir, reason)
            not_done.append("no uv.lock was written")
            later.append("uv lock")
            if python_problem is None:
                print(f"warning: no uv.lock was written ({reason}). The project is ready; "
                      f"write it later with: cd {project_dir} && uv lock", file=sys.stderr,
                      flush=True)  # fmt: skip
    if not wanted:
        say(f"skipped creating the tables; later run: {upgrade_hint(slug)}")
    elif python_problem:
        not_done.append("the tables were not created")
        later.append(upgrade_hint(slug))
    else:
        try:
            reason = create_tables(slug, project_dir, url)
        except Exception as exc:  # the project is kept whatever happens
            reason = f"{type(exc).__name__}: {exc}"
        if reason and uv:
            python_problem = missing_python(uv, version, project_dir, reason)
        if reason and python_problem:
            not_done.append("the tables were not created")
            later.append(upgrade_hint(slug))
        elif reason:
            warn_tables(reason, slug, project_dir, url)
    if python_problem:
        cause, way_out = python_problem
        message = (
            f"warning: {cause}: {' and '.join(not_done)}. The project is ready; {way_out}, "
            f"then run: cd {project_dir} && {' && '.join(later)}"
        )
        print(redact_text(message, url), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(CONTEXT))
