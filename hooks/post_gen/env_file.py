"""The project's `.env`: its settings and secrets, written once with mode 0600."""

from __future__ import annotations

import os
import re
from pathlib import Path

SAFE_ENV_VALUE = re.compile(r"[A-Za-z0-9_./:@%+=,-]*")


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
