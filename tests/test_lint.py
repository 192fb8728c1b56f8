"""The template's own code (hooks, tests, benchmark) is clean."""

from __future__ import annotations

import shutil
import subprocess

from tests.bake import TEMPLATE


def test_ruff_check_and_format() -> None:
    ruff = shutil.which("ruff")
    assert ruff, "ruff is a dev dependency; run through uv run"
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [ruff, *command, "hooks", "tests", "bench", "scripts"],
            cwd=TEMPLATE, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
