"""Finish the generated project: the examples, `.env`, recorded answers and the database tables.

Runs on cookiecutter's own interpreter (under `uvx` only cookiecutter's dependencies exist), so
it uses the standard library only. It never fails the generation: whatever goes wrong is one
warning line naming the command that finishes the job later, and exit 0.

Cookiecutter runs a rendered copy of this script from the temp dir, so the modules doing the
work (`hooks/post_gen/`) are found through the template's folder (`hooks_dir`). What cruft's
re-rendering needs (removing the examples) is here, so it never depends on finding them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

CONTEXT: dict[str, object] = json.loads({{ cookiecutter | tojson | tojson }})  # noqa: F821  # fmt: skip

MODULES = "post_gen"
# The example tools, widgets (and their ChatKit Studio `.widget` files), actions and client
# tool live in these files of the project (the slug written as {slug}); they are deleted when
# `examples` is no. The lines that use them in other files are inside Jinja
# `if cookiecutter.examples` blocks of those templates.
EXAMPLE_FILES = (
    "src/{slug}/agent/tools.py",
    "src/{slug}/agent/widgets.py",
    "src/{slug}/agent/clock.widget",
    "src/{slug}/agent/countdown.widget",
    "tests/agent/test_examples.py",
    "tests/agent/test_example_widgets.py",
)


def to_bool(value: object) -> bool:
    """A cookiecutter boolean answer (native bool, or yes/no text from older contexts)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "t", "yes", "y", "on"}


def remove_own_rendered_copy(script: str) -> None:
    """Delete the rendered copy of this hook cookiecutter left in the temp dir (it holds the
    answers, a database password included)."""
    path = Path(script).resolve()
    with contextlib.suppress(OSError):
        if path.parent == Path(tempfile.gettempdir()).resolve() and path.name.startswith("tmp"):
            path.unlink()


def remove_examples(project_dir: Path, slug: str) -> list[str]:
    """Delete the example files (EXAMPLE_FILES) from the project; the ones that were there."""
    removed = []
    for pattern in EXAMPLE_FILES:
        relative = pattern.format(slug=slug)
        path = project_dir / relative
        if path.is_file():
            path.unlink()
            removed.append(relative)
    return removed


def regenerating(context: dict[str, object]) -> bool:
    """Whether cruft is regenerating the template (`cruft diff`/`cruft update` render it into
    a temp dir): its context has the `_commit` cruft adds and none of cookiecutter's
    `_output_dir`."""
    return "_commit" in context and "_output_dir" not in context


def hooks_dir(context: dict[str, object]) -> Path | None:
    """The template's `hooks/` folder (the one holding MODULES), or None.

    `_repo_dir` is the template as cookiecutter was given it: absolute, or relative to the
    folder cookiecutter started in. That is the shell's PWD; on Linux also cookiecutter's
    working directory while it runs hooks (it runs them from inside the template).
    """
    repo = Path(str(context.get("_repo_dir") or "."))
    candidates = [repo] if repo.is_absolute() else []
    with contextlib.suppress(OSError):
        candidates.append(Path(os.readlink(f"/proc/{os.getppid()}/cwd")))
    if os.environ.get("PWD"):
        candidates.append(Path(os.environ["PWD"]) / repo)
    for candidate in candidates:
        if (candidate / "hooks" / MODULES / "__init__.py").is_file():
            return candidate / "hooks"
    return None


def main(context: dict[str, object]) -> int:
    """Remove the examples when asked, then hand over to `post_gen.finish`; always 0."""
    remove_own_rendered_copy(sys.argv[0])
    project_dir = Path.cwd()
    slug = str(context["project_slug"])
    examples = to_bool(context.get("examples", True))
    if regenerating(context):
        # cruft diff/update: the same files as a fresh generation would have (its skip list
        # covers .env, .cruft.json and uv.lock), and not a word on their output
        if not examples:
            with contextlib.suppress(OSError):
                remove_examples(project_dir, slug)
        return 0
    if not examples:
        try:
            removed = remove_examples(project_dir, slug)
            print(f"  left out the examples ({len(removed)} files)", flush=True)
        except OSError as exc:  # the project is kept whatever happens
            print(f"warning: could not remove the example files: {exc}", file=sys.stderr)
    where = hooks_dir(context)
    try:
        if where is None:
            raise ImportError(f"no hooks/{MODULES}/ beside {context.get('_repo_dir')!r}")
        sys.dont_write_bytecode = True  # no __pycache__ left in the template's folder
        sys.path.insert(0, str(where))
        from post_gen.finish import finish
    except ImportError as exc:  # the project is kept whatever happens
        print(f"warning: the template's hook modules were not found ({exc}): no .env, "
              ".cruft.json or uv.lock were written. The project is ready; copy .env.example "
              "to .env and set AUTH_SECRET, then run `uv lock`", file=sys.stderr)  # fmt: skip
        return 0
    return finish(context, project_dir)


if __name__ == "__main__":
    sys.exit(main(CONTEXT))
