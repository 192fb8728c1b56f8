"""Bad answers, baked with the real cookiecutter CLI: one line each, all in one run, no project
left behind and no password anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bake import Baker

PASSWORD = "Hunter2-#not$safe"


def test_bad_yes_no_answer_is_rejected(baker: Baker, tmp_path: Path) -> None:
    """cookiecutter itself refuses a yes/no answer it cannot read, before any hook runs."""
    baked = baker(tmp_path, "examples=maybe")
    assert baked.result.returncode != 0
    assert "maybe" in baked.output and "examples" in baked.output
    assert list(baked.out.iterdir()) == []


@pytest.mark.parametrize(
    ("answer", "variable"),
    [
        ("project_slug=My App", "project_slug"),
        ("project_slug=1app", "project_slug"),
        ("project_slug=json", "project_slug"),
        ("project_slug=fastapi", "project_slug"),
        ("project_slug=class", "project_slug"),
        ("project_slug=tests", "project_slug"),
        ("project_name=", "project_name"),
        (f"database_url=mysql://root:{PASSWORD}@db/app", "database_url"),
        (f"database_url=postgresql://root:{PASSWORD}@:notaport/app", "database_url"),
        ("database_url=postgresql:///app", "database_url"),
        ("database_url=sqlite", "database_url"),
        ("model=", "model"),
        ("model=gpt 4", "model"),
    ],
)
def test_bad_answers_are_rejected(baker: Baker, tmp_path: Path, answer: str, variable: str) -> None:
    extra = [] if answer.startswith("project_slug") else ["project_slug=rejected_app"]
    baked = baker(tmp_path, answer, *extra, slug="rejected_app")
    assert baked.result.returncode != 0
    ours = [line for line in baked.result.stderr.splitlines() if line.startswith("error: ")]
    assert len(ours) == 1, baked.output
    assert ours[0].startswith(f"error: {variable}: ")
    assert "allowed: " in ours[0]
    assert PASSWORD not in baked.output
    assert list(baked.out.iterdir()) == [], "the output directory must be removed"
    replay = "\n".join(p.read_text() for p in baked.replay_dir.glob("*.json"))
    assert PASSWORD not in replay


def test_every_bad_answer_is_reported_in_one_run(baker: Baker, tmp_path: Path) -> None:
    """The user fixes everything after one run, not one answer per run."""
    baked = baker(tmp_path, "project_slug=json", "model=gpt 4", "project_name=",
                  f"database_url=mysql://root:{PASSWORD}@db/app", slug="json")  # fmt: skip
    assert baked.result.returncode != 0
    ours = [line for line in baked.result.stderr.splitlines() if line.startswith("error: ")]
    assert [line.split(":", 2)[1].strip() for line in ours] == [
        "project_name",
        "project_slug",
        "model",
        "database_url",
    ], baked.output
    assert PASSWORD not in baked.output
    assert list(baked.out.iterdir()) == []
