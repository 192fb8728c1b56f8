"""uv.lock, and telling apart "no Python for python_version here" from other uv failures."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from post_gen.common import last_line, say, uv_env

LOCK_TIMEOUT = 300
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")


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
