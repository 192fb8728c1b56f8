"""The post hook's work after the examples: `.env`, `.cruft.json`, uv.lock and the tables.

Whatever goes wrong is a warning line; it always returns 0 (a failing hook deletes the project).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from post_gen import answers, common, env_file, lock, tables
from post_gen.common import redact_text, say, to_bool


def finish(context: dict[str, object], project_dir: Path) -> int:
    """Write `.env`, `.cruft.json` and uv.lock, then create the tables; always returns 0."""
    slug = str(context["project_slug"])
    url = str(context["database_url"])
    try:
        text = env_file.env_file_text(context, os.environ.get("OPENAI_API_KEY", ""),
                                      secrets.token_urlsafe(48))  # fmt: skip
        if env_file.write_env(project_dir, text):
            say("wrote .env (mode 0600: database URL, model, API key, a fresh AUTH_SECRET)")
        else:
            say("kept the existing .env")
        say(f"recorded the answers in {answers.write_answers(project_dir, context).name} "
            "(for cruft)")  # fmt: skip
    except Exception as exc:  # the project is kept whatever happens
        print(redact_text(f"warning: could not finish the project files: {exc}", url),
              file=sys.stderr)  # fmt: skip
    try:
        finish_with_uv(context, project_dir, slug, url)
    except Exception as exc:  # the project is kept whatever happens
        tables.warn_tables(f"{type(exc).__name__}: {exc}", slug, project_dir, url)
    return 0


def finish_with_uv(context: dict[str, object], project_dir: Path, slug: str, url: str) -> None:
    """uv.lock, then the tables; one warning line for whatever could not be done."""
    version = str(context.get("python_version", "3.11"))
    wanted = to_bool(context.get("create_tables", True))
    uv = common.find_uv()
    python_problem = None
    not_done: list[str] = []
    later: list[str] = []
    if uv is None:
        say("uv is not installed: no uv.lock yet (run `uv lock` in the project once it is)")
    else:
        reason = lock.lock_dependencies(uv, project_dir)
        if reason:
            python_problem = lock.missing_python(uv, version, project_dir, reason)
            not_done.append("no uv.lock was written")
            later.append("uv lock")
            if python_problem is None:
                print(f"warning: no uv.lock was written ({reason}). The project is ready; "
                      f"write it later with: cd {project_dir} && uv lock", file=sys.stderr,
                      flush=True)  # fmt: skip
    hint = tables.upgrade_hint(slug)
    if not wanted:
        say(f"skipped creating the tables; later run: {hint}")
    elif python_problem:
        not_done.append("the tables were not created")
        later.append(hint)
    else:
        try:
            reason = tables.create_tables(slug, project_dir, url)
        except Exception as exc:  # the project is kept whatever happens
            reason = f"{type(exc).__name__}: {exc}"
        if reason and uv:
            python_problem = lock.missing_python(uv, version, project_dir, reason)
        if reason and python_problem:
            not_done.append("the tables were not created")
            later.append(hint)
        elif reason:
            tables.warn_tables(reason, slug, project_dir, url)
    if python_problem:
        cause, way_out = python_problem
        message = (
            f"warning: {cause}: {' and '.join(not_done)}. The project is ready; {way_out}, "
            f"then run: cd {project_dir} && {' && '.join(later)}"
        )
        print(redact_text(message, url), file=sys.stderr, flush=True)
