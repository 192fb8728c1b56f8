"""Keep the garbage collector's full passes off the request path (`gc.freeze`)."""

from __future__ import annotations

import gc
import itertools

FREEZE_AFTER_REQUESTS = frozenset({100, 1_000})
_served = itertools.count(1)


def freeze_long_lived_objects(*, collect: bool = True) -> None:
    """Put every object alive now out of the cyclic collector's way (docs/design_decisions.md,
    "Garbage collection")."""
    if collect:
        gc.collect()
    gc.freeze()


def count_request() -> None:
    """Freeze again once lazy imports and caches have settled."""
    if next(_served) in FREEZE_AFTER_REQUESTS:
        freeze_long_lived_objects(collect=False)
