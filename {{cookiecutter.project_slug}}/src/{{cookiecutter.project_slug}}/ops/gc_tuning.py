"""Keep the garbage collector's full passes off the request path (`gc.freeze`)."""

from __future__ import annotations

import gc
import itertools

FREEZE_AFTER_REQUESTS = frozenset({100, 1_000})
_served = itertools.count(1)


def freeze_long_lived_objects(*, collect: bool = True) -> None:
    """Put every object alive now out of the cyclic garbage collector's way (`gc.freeze`).

    The SDKs leave a few hundred thousand long-lived objects (modules, types, schemas);
    without this each full collection walks them all and stalls the event loop for 100-200
    ms, which shows up as p99 latency. Done at startup (after a full collection) and again,
    without collecting (a full collection is itself such a stall), after the first requests,
    once lazy imports and caches have settled.
    """
    if collect:
        gc.collect()
    gc.freeze()


def count_request() -> None:
    """Note one more request; freeze again once lazy imports and caches have settled."""
    if next(_served) in FREEZE_AFTER_REQUESTS:
        freeze_long_lived_objects(collect=False)
