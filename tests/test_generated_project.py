"""Each baked combination installs, and its own lint, type check and test suite pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.bake import Baker, run_in, uv_binary

pytestmark = pytest.mark.slow

COMBINATIONS = {
    "defaults": ("my_chatkit_app", []),
    # Everything optional left out, with hostile names: one combination, as each one costs
    # minutes of CI (the names only reach pyproject.toml and the README, whatever the rest).
    "minimal": ("odd_names", ["project_name=Zoë's \"Chat\" & <Co> $(id) \\ 🚀",
                              "project_slug=odd_names",
                              "description=Quotes \" ' \\ and 🚀 unicode; `ls` $HOME",
                              "author_name=Zoë O'Brien-Ünal",
                              "chat_page=no", "examples=no", "model=gpt-4o-mini"]),
    "python_3_12": ("py312_app", ["project_slug=py312_app", "python_version=3.12"]),
}  # fmt: skip


def python_available(version: str) -> bool:
    """Whether uv can find this Python without downloading it."""
    done = subprocess.run(
        [uv_binary(), "python", "find", "--no-python-downloads", version],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.returncode == 0


def check(project: Path, *command: str, timeout: int = 600) -> str:
    done = run_in(project, *command, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("name", list(COMBINATIONS))
def test_baked_project_passes_its_own_checks(baker: Baker, tmp_path: Path, name: str) -> None:
    slug, answers = COMBINATIONS[name]
    python = next((a.split("=", 1)[1] for a in answers if a.startswith("python_version=")), None)
    if python and not python_available(python):
        pytest.skip(f"no Python {python} on this machine (uv may not download one here)")
    baked = baker(tmp_path, *answers, "create_tables=no", slug=slug)
    assert baked.result.returncode == 0, baked.output
    project = baked.project
    check(project, "uv", "sync", "--quiet")
    check(project, "uv", "run", "--quiet", "ruff", "check", ".")
    check(project, "uv", "run", "--quiet", "ruff", "format", "--check", ".")
    check(project, "uv", "run", "--quiet", "mypy")
    output = check(project, "uv", "run", "--quiet", "pytest", "-n", "auto", "-q", "-p",
                   "no:cacheprovider", timeout=900)  # fmt: skip
    assert " passed" in output and " failed" not in output
    summary = output.strip().splitlines()[-1]
    assert " warning" not in summary, f"a fresh project's test run warns: {output[-3000:]}"
