"""The project's command line as users run it: `python -m <package> ...` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from tests.support.app import TEST_AUTH_SECRET

PACKAGE = "{{ cookiecutter.project_slug }}"


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: int | IO[str] = subprocess.DEVNULL,
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end (at most a minute), its output captured as text; stdin is
    empty unless given (e.g. a pty)."""
    return subprocess.run(
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_env(database_url: str) -> dict[str, str]:
    """This environment with only DATABASE_URL and AUTH_SECRET of the app's configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    env.update(DATABASE_URL=database_url, AUTH_SECRET=TEST_AUTH_SECRET)
    return env


def run_cli(
    cwd: Path, database_url: str, *args: str, stdin: int | IO[str] = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """`python -m <package> ARGS` against that database."""
    return run(
        [sys.executable, "-m", PACKAGE, *args], env=cli_env(database_url), cwd=cwd, stdin=stdin
    )
