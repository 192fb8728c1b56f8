"""The project's command line as users run it: `python -m <package> ...` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from tests.support.app import TEST_AUTH_SECRET

PACKAGE = "{{ cookiecutter.project_slug }}"


def run_cli(
    cwd: Path, database_url: str, *args: str, stdin: int | IO[str] = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """`python -m <package> ARGS` with only DATABASE_URL and AUTH_SECRET configured (other
    settings come from the environment); stdin is empty unless given (e.g. a pty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    env.update(DATABASE_URL=database_url, AUTH_SECRET=TEST_AUTH_SECRET)
    return subprocess.run(
        [sys.executable, "-m", PACKAGE, *args],
        env=env,
        cwd=cwd,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
