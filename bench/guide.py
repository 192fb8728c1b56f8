"""Where the baseline's guide-style store comes from, and the guide's request context.

The store is the generated project's own `benchmarks/guide_store.py` (`GuideStore`: a new
synchronous psycopg connection per call, as the ChatKit guide's Postgres example does), so
the end-to-end baseline and the store benchmark measure the same thing.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from driver.generated import GUIDE_STORE  # bench/ is on the path


@dataclass(frozen=True)
class GuideUser:
    """The user as the guide-style store reads it (`context.user.id`)."""

    id: str


@dataclass(frozen=True)
class GuideContext:
    """The guide's small per-request context."""

    user: GuideUser


def load_guide_store(project: Path) -> ModuleType:
    """The baked project's `benchmarks/guide_store.py`, imported by path."""
    path = project / GUIDE_STORE
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: the baseline needs the project's guide store")
    spec = importlib.util.spec_from_file_location("bench_guide_store", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module
