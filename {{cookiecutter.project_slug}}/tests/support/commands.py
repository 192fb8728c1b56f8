"""The project's command line as users run it: `python -m <package> ...` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.app import TEST_AUTH_SECRET

PACKAGE = "{{ cookiecutter.project_slug }}"


def run_cli(cwd: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m <package> ARGS` with only DATABASE_URL and AUTH_SECRET configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    env.update(DATABASE_URL=database_url, AUTH_SECRET=TEST_AUTH_SECRET)
    return subprocess.run(
        [sys.executable, "-m", PACKAGE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
