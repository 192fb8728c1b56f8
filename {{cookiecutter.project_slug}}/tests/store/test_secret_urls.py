"""No DATABASE_URL password in any output line: every form libpq accepts, under `serve` and
under uvicorn itself, with an unreachable host (the "database unreachable" lines)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.support.app import TEST_AUTH_SECRET
from tests.support.processes import ServerProcess

PACKAGE = "{{ cookiecutter.project_slug }}"
PASSWORD = "S3cret Passw0rd"
WORD = "S3cretPassw0rd"
# 127.0.0.1:1 refuses at once: the app starts, its probes fail and say so.
URLS = {
    "space in the password": f"postgresql://app:{PASSWORD}@127.0.0.1:1/db",
    "encoded parameter name": f"postgresql://app@127.0.0.1:1/db?pass%77ord={WORD}",
    "password in the query": f"postgresql://app@127.0.0.1:1/db?sslmode=disable&password={WORD}",
    "PGPASSWORD in the query": f"postgresql://app@127.0.0.1:1/db?PGPASSWORD={WORD}",
    "encoded password": "postgresql://app:S3cret%20Passw0rd%40x@127.0.0.1:1/db",
    "key=value": f"host=127.0.0.1 port=1 user=app password={WORD} dbname=db",
    "key=value, quoted": f"host=127.0.0.1 port=1 password='{PASSWORD}' dbname=db",
}
SECRETS = (PASSWORD, WORD, "S3cret", "Passw0rd", "S3cret%20Passw0rd")
COMMANDS = {
    "serve": [sys.executable, "-m", PACKAGE, "serve", "--port", "0"],
    "uvicorn": [sys.executable, "-m", "uvicorn", f"{PACKAGE}.main:app", "--port", "0"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_no_password_in_any_output_line(command: str) -> None:
    """One process per URL form, all at once (each takes seconds to start)."""
    apps: dict[str, ServerProcess] = {}
    for form, url in URLS.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
        env.update(DATABASE_URL=url, AUTH_SECRET=TEST_AUTH_SECRET, LOG_LEVEL="DEBUG")
        apps[form] = ServerProcess(COMMANDS[command], env=env)
    try:
        deadline = time.monotonic() + 180  # a loaded CI machine imports slowly
        for app in apps.values():
            while time.monotonic() < deadline and app.proc.poll() is None:
                if "unreachable" in app.stdout + app.stderr:
                    break
                time.sleep(0.1)
    finally:
        for app in apps.values():
            app.stop()
    for form, app in apps.items():
        output = app.stdout + app.stderr
        if app.proc.returncode not in (0, -15):  # refused at startup: said in a line
            assert "DATABASE_URL" in output, (form, app.describe())
        else:
            assert "unreachable" in output, (form, app.describe())
        for secret in SECRETS:
            assert secret not in output, (form, app.describe())
