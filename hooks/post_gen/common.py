"""What every step of the post hook uses: progress lines, passwords kept out of output, uv."""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import unquote


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


def uv_env() -> dict[str, str]:
    """The environment for uv in the project: its own .venv, not cookiecutter's."""
    return {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
