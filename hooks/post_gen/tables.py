"""The tables: the project's own `db upgrade` (through uv), or one warning line with the
command that creates them later."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from post_gen import common
from post_gen.common import last_line, redact_text, say, strip_password, uv_env

EMBEDDED = "embedded"
UPGRADE_TIMEOUT = 900


def upgrade_hint(slug: str) -> str:
    """The exact command that creates the tables later."""
    return f"uv run python -m {slug} db upgrade"


def upgrade_command(slug: str, project_dir: Path) -> tuple[list[str], dict[str, str]] | str:
    """How to run `db upgrade` here, or the reason it can't run."""
    env = uv_env()
    uv = common.find_uv()
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
