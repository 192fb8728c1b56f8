"""The generated project's modules, files and commands the benchmark uses, all in this one
module: when the template moves or renames one of them, this is the place to follow it."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

GUIDE_STORE = Path("benchmarks") / "guide_store.py"
"""The guide-style store the baseline runs on (bench/guide.py)."""


def slug_of(project: Path) -> str:
    """The package name of a baked project (its one package under src/)."""
    packages = [p.name for p in (project / "src").iterdir() if (p / "__init__.py").is_file()]
    if len(packages) != 1:
        raise RuntimeError(f"expected one package under {project / 'src'}, found {packages}")
    return packages[0]


def cli(venv_bin: Path, slug: str, *args: str) -> list[str]:
    """The project's command line (`serve`, `db upgrade`) from its virtualenv."""
    return [str(venv_bin / slug), *args]


def embedded(slug: str) -> ModuleType:
    """The development PostgreSQL: `start_embedded(data_dir, cleanup_mode=...)` -> URL and
    `stop_embedded(data_dir)`."""
    return importlib.import_module(f"{slug}.dev.embedded")


def chatkit_client(slug: str) -> tuple[Any, type[Exception]]:
    """The project's ChatKit client class and the error it raises on an HTTP error status."""
    module = importlib.import_module(f"{slug}.dev.client")
    return module.ChatKitClient, module.ChatKitHTTPError


def postgres_store(slug: str) -> Callable[[str, int], Any]:
    """The project's PostgresStore as `make(url, max_size)` (opened on first use, closed with
    `close()`); imported now, not inside a timed phase."""
    store_class = importlib.import_module(f"{slug}.store").PostgresStore
    return lambda url, max_size: store_class(url, max_size=max_size)


def request_context(slug: str) -> Callable[[str], Any]:
    """A request context for a user id, as the store's methods take it: `make(user)`."""
    module = importlib.import_module(f"{slug}.context")
    return lambda user: module.RequestContext(request=None, user=module.User(id=user))


def fake_openai(project: Path) -> ModuleType:
    """The project's fake OpenAI server (`FakeModel`, `FakeOpenAI`), the one its tests use."""
    sys.path.insert(0, str(project))
    return importlib.import_module("tests.support.fake_openai")
