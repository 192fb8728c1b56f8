"""The generated package's shape, measured on real bakes: rooms, sizes, imports, prose, and
documentation that names only what exists."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from tests.bake import DEFAULT_SLUG, TEMPLATE, Baker, template_files

MAX_PROSE_SHARE = 0.10
MAX_TOP_MODULES = 8
MIN_ROOMS = 4
MAX_MODULE_LINES = 400
BAKES = {"default": (), "minimal": ("examples=no",)}
TOOLING = ("bench", "hooks", "scripts", "tests")
"""The template's own Python (every module below these folders of the template, the template's
tests included), held to the generated code's size rule; the generated project's files are
measured on the bakes."""
CODE_FILES = (".py", ".sql", ".html", ".toml", ".yml", ".yaml", ".example")
PATH_REF = re.compile(
    r"(?<![\w/.<-])((?:[\w-]+/)*[\w-]+\.(?:py|sql|md|html|yml|yaml|toml))(?![\w/-])"
)
SNAKE_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
CALL = re.compile(r"(?:await )?((?:\w+\.)*)(\w+)\(.*\)")
WIRING = frozenset({"main", "cli"})
EXTERNAL = frozenset({"gc", "jwt", "pool", "app", "ctx", "asyncio", "os", "secrets", "chatkit"})
"""First names of dotted calls into libraries, not the project (`gc.freeze()`; `chatkit.` is
ChatKit.js in the browser)."""


@pytest.fixture(scope="module", params=sorted(BAKES))
def project(
    request: pytest.FixtureRequest, baker: Baker, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    answers = BAKES[request.param]
    baked = baker(tmp_path_factory.mktemp(f"layout-{request.param}"), *answers, "create_tables=no")
    assert baked.result.returncode == 0, baked.output
    return baked.project


def package_of(project: Path) -> Path:
    return project / "src" / DEFAULT_SLUG


def modules(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def prose_lines(source: str) -> set[int]:
    """The lines holding comments or docstrings (any string statement: module, class, function
    and attribute docstrings)."""
    lines = {
        token.start[0]
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        for statement in body if isinstance(body, list) else []:
            if (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                lines.update(range(statement.lineno, (statement.end_lineno or 0) + 1))
    return lines


def test_comments_and_docstrings_are_at_most_a_tenth(project: Path) -> None:
    counted = [(len(prose_lines(p.read_text())), len(p.read_text().splitlines()), p)
               for p in modules(package_of(project))]  # fmt: skip
    prose, total = sum(c[0] for c in counted), sum(c[1] for c in counted)
    wordiest = sorted(counted, key=lambda c: c[0], reverse=True)[:5]
    assert prose <= MAX_PROSE_SHARE * total, (
        f"{prose} of {total} lines are comments or docstrings ({prose / total:.1%}); "
        f"most in {[(p.name, n) for n, _, p in wordiest]}"
    )


def test_module_docstrings_are_short(project: Path) -> None:
    long = {}
    for path in modules(package_of(project)):
        docstring = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        if docstring is not None and len(docstring.strip().splitlines()) > 3:
            long[str(path.relative_to(project))] = len(docstring.strip().splitlines())
    assert not long, f"module docstrings over 3 lines: {long}"


def test_rooms_and_sizes(project: Path) -> None:
    package = package_of(project)
    top = sorted(p.name for p in package.glob("*.py"))
    rooms = sorted(p.parent.name for p in package.glob("*/__init__.py"))
    assert len(top) <= MAX_TOP_MODULES, top
    assert len(set(rooms) - {"compat"}) >= MIN_ROOMS, rooms
    too_long = {str(p.relative_to(package)): n for p in modules(package)
                if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}  # fmt: skip
    assert not too_long, too_long


def imported_modules(path: Path, package: Path) -> set[str]:
    """The package's own modules `path` imports (dotted, relative to the package), lazy and
    type-checking imports included."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    here = parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == DEFAULT_SLUG:
                target = node.module.split(".")[1:]
            else:
                continue
            names = [alias.name for alias in node.names]
            for name in names:  # `from . import queries` names a module
                candidate = [*target, name]
                module = package.joinpath(*candidate)
                is_module = module.with_suffix(".py").is_file() or (module / "__init__.py").exists()
                found.add(".".join(candidate if is_module else target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == DEFAULT_SLUG:
                    found.add(".".join(alias.name.split(".")[1:]))
    return {name for name in found if name}


def room(module: str) -> str:
    """A subpackage (`store`), or a top-level module on its own (`settings`)."""
    return module.split(".")[0]


def test_rooms_import_in_one_direction(project: Path) -> None:
    """No room imports one that imports it back (directly or around a circle), nothing imports
    the wiring (`main`, `cli`), and no module imports its own package's `__init__`."""
    package = package_of(project)
    edges: dict[str, set[str]] = {}
    for path in modules(package):
        name = ".".join(path.relative_to(package).with_suffix("").parts)
        for target in imported_modules(path, package):
            if room(target) != room(name):
                edges.setdefault(room(name), set()).add(room(target))
            assert room(target) not in WIRING or room(name) in {*WIRING, "__main__"}, (
                f"{name} imports the wiring ({target})"
            )

    def circle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                return (*seen, nxt)
            if nxt not in seen:
                found = circle_from(start, nxt, (*seen, nxt))
                if found:
                    return found
        return None

    for start in sorted(edges):
        assert circle_from(start, start, (start,)) is None, (
            f"import circle: {' -> '.join(circle_from(start, start, (start,)) or ())}"
        )


SQL_START = re.compile(
    r"\s*(?:SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|WITH|CREATE|ALTER|DROP|TRUNCATE|"
    r"SET\s+TRANSACTION|LOCK\s+TABLE)\s"
)
"""A string that starts like an SQL statement (upper-case keywords, as the project writes them)."""


def sql_strings(path: Path) -> list[int]:
    """The lines of string literals (f-strings too) in `path` that start like SQL."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            text = first.value if isinstance(first, ast.Constant) else ""
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if isinstance(text, str) and SQL_START.match(text):
            found.append(node.lineno)
    return found


def test_module_names_are_unique(project: Path) -> None:
    """One file per name across the package: a search or a traceback lands in one place."""
    seen: dict[str, list[str]] = {}
    for path in modules(package_of(project)):
        if path.name not in {"__init__.py", "__main__.py"}:
            seen.setdefault(path.name, []).append(str(path.relative_to(package_of(project))))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}


def test_sql_lives_in_the_store(project: Path) -> None:
    """Other rooms call named store functions; no SQL string outside `store/`."""
    package = package_of(project)
    outside = {
        str(p.relative_to(package)): lines
        for p in modules(package)
        if p.relative_to(package).parts[0] != "store" and (lines := sql_strings(p))
    }
    assert not outside, f"SQL outside store/ (file: lines): {outside}"
    assert sql_strings(package / "store" / "queries.py"), "the SQL heuristic finds nothing"


def test_the_store_imports_nothing_from_dev(project: Path) -> None:
    """Storage stands without the development aids (main.py passes the embedded server in)."""
    package = package_of(project)
    found = {str(p.relative_to(package)): sorted(dev) for p in modules(package / "store")
             if (dev := {m for m in imported_modules(p, package) if room(m) == "dev"})}  # fmt: skip
    assert not found, found


# ------------------------------------------------------------------------------ docs


def prose_of(markdown: str) -> str:
    """The text outside fenced code blocks, without URLs."""
    outside = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return re.sub(r"https?://\S+", "", outside)


def known_words(project: Path) -> set[str]:
    words: set[str] = set()
    for path in project.rglob("*"):
        if (path.is_file() and ".venv" not in path.parts
                and (path.suffix in CODE_FILES or path.name == "Dockerfile")):  # fmt: skip
            words.update(re.findall(r"\w+", path.read_text(encoding="utf-8", errors="replace")))
    return words


def missing_references(project: Path, markdown: Path) -> list[str]:
    """Files, functions and snake_case names the document puts in backticks (and file paths
    anywhere in its prose) that the project does not have."""
    files = [p.relative_to(project).as_posix() for p in project.rglob("*")
             if p.is_file() and ".venv" not in p.parts]  # fmt: skip
    words = known_words(project)
    text = prose_of(markdown.read_text(encoding="utf-8"))
    missing = []
    for ref in set(PATH_REF.findall(text)):
        if not any(f == ref or f.endswith("/" + ref) for f in files):
            missing.append(ref)
    for span in set(re.findall(r"`([^`\n]+)`", text)):
        call = CALL.fullmatch(span)
        if call and call.group(1).split(".")[0] not in EXTERNAL:
            name = call.group(2)
        elif SNAKE_NAME.fullmatch(span):
            name = span.removesuffix("_total")  # Prometheus adds it to a counter's name
        else:
            continue
        if name not in words:
            missing.append(span)
    return sorted(missing)


def test_docs_name_only_what_the_bake_has(project: Path) -> None:
    documents = [project / "README.md", *sorted((project / "docs").glob("*.md"))]
    assert (project / "docs" / "design_decisions.md") in documents
    missing = {doc.name: found for doc in documents if (found := missing_references(project, doc))}
    assert not missing, missing


def test_cited_design_sections_exist(project: Path) -> None:
    """`docs/design_decisions.md, "Section"` in the code names a heading the file has."""
    headings = re.findall(
        r"^## (.+)$", (project / "docs" / "design_decisions.md").read_text(), re.M
    )
    cited = set()
    for path in modules(package_of(project)):
        cited.update(re.findall(r'design_decisions\.md,\s*"([^"]+)"', path.read_text()))
    unknown = sorted(c for c in cited if not any(c in heading for heading in headings))
    assert cited and not unknown, unknown


def test_template_tooling_modules_are_at_most_400_lines() -> None:
    sizes = {
        name: len((TEMPLATE / name).read_text("utf-8").splitlines())
        for name in template_files()
        if name.endswith(".py") and name.split("/", 1)[0] in TOOLING
    }
    assert {"bench/e2e.py", "hooks/post_gen_project.py", "scripts/uv.py"} <= sizes.keys()
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert too_long == {}, f"template tooling modules over {MAX_MODULE_LINES} lines: {too_long}"
