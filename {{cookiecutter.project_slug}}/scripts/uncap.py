"""Lift the upper bounds of the dependencies in pyproject.toml (for the "newest" workflow).

    python scripts/uncap.py [pyproject.toml]

The dependencies are capped to the releases this project was tested with (`<1.7`, `<4`, ...).
The scheduled "newest releases" workflow runs this, then `uv sync --upgrade` and the checks, to
find out early whether a newer release breaks the project. It rewrites the file in place and
only touches requirement strings in `[project] dependencies`,
`[project.optional-dependencies]` and `[dependency-groups]`: every `<` / `<=` clause is
dropped and `~=X.Y` becomes `>=X.Y`; lower bounds, pins (`==`), extras and markers stay.
Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
ARRAY_START = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.-]+)\s*=\s*\[")
QUOTED = re.compile(r"\"((?:[^\"\\]|\\.)*)\"|'([^']*)'")
REQUIREMENT = re.compile(r"^(\s*[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*)(.*)$", re.S)


def uncap_requirement(requirement: str) -> str:
    """`requirement` without upper bounds (returned unchanged when it has none)."""
    spec, semicolon, marker = requirement.partition(";")
    match = REQUIREMENT.match(spec)
    if not match or match.group(2).lstrip().startswith("@"):
        return requirement  # not a requirement, or a direct URL reference
    name, clauses = match.groups()
    clauses = clauses.strip()
    if clauses.startswith("(") and clauses.endswith(")"):
        clauses = clauses[1:-1]  # the old `name (>=1,<2)` form
    kept = []
    changed = False
    for clause in (part.strip() for part in clauses.split(",")):
        if not clause:
            continue
        if clause.startswith("<"):
            changed = True
            continue
        if clause.startswith("~="):
            clause = ">=" + clause[2:]
            changed = True
        kept.append(re.sub(r"\s+", "", clause))
    if not changed:
        return requirement
    return name.rstrip() + ",".join(kept) + (";" + marker if semicolon else "")


def _is_dependency_array(table: str, key: str) -> bool:
    key = key.strip("\"'")
    if table == "project":
        return key == "dependencies"
    return table in {"project.optional-dependencies", "dependency-groups"}


def _outside_strings(line: str) -> str:
    """The line with its quoted strings and its comment removed."""
    return QUOTED.sub("", line).partition("#")[0]


def uncap(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The pyproject text without upper bounds, and the (old, new) requirements changed."""
    changes: list[tuple[str, str]] = []

    def replace(match: re.Match[str]) -> str:
        double, single = match.group(1), match.group(2)
        old = double if double is not None else single
        new = uncap_requirement(old)
        if new == old:
            return match.group(0)
        changes.append((old, new))
        quote = '"' if double is not None else "'"
        return quote + new + quote

    lines = text.splitlines(keepends=True)
    table = ""
    in_array = False
    for index, line in enumerate(lines):
        if not in_array:
            header = TABLE.match(line)
            if header:
                table = header.group(1).strip()
                continue
            start = ARRAY_START.match(line)
            if not start or not _is_dependency_array(table, start.group(1)):
                continue
            in_array = True
            body_start = start.end()
        else:
            body_start = 0
        head, body = line[:body_start], line[body_start:]
        lines[index] = head + QUOTED.sub(replace, body)
        if "]" in _outside_strings(body):
            in_array = False
    return "".join(lines), changes


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    text, changes = uncap(path.read_text("utf-8"))
    path.write_text(text, encoding="utf-8")
    for old, new in changes:
        print(f"{old}  ->  {new}")
    if not changes:
        print(f"no upper bounds in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
