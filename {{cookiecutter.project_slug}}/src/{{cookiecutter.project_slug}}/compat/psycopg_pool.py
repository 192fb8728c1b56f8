"""psycopg_pool: the wording of its per-attempt connection warnings, which the app replaces."""

from __future__ import annotations

import logging

POOL_LOGGER = "psycopg.pool"
CONNECT_FAILURE_PREFIXES = ("error connecting in ", "reconnection attempt in pool ")
"""How the pool's warnings about a failed connection attempt begin (`_add_connection`)."""


def _not_a_connect_failure(record: logging.LogRecord) -> bool:
    return not (
        record.levelno == logging.WARNING
        and isinstance(record.msg, str)
        and record.msg.startswith(CONNECT_FAILURE_PREFIXES)
    )


def quiet_connection_failures() -> None:
    """Drop the pool's warning per failed connection attempt (one every few seconds while the
    database is down): store/health.py reports outages instead. Idempotent."""
    pool_logger = logging.getLogger(POOL_LOGGER)
    if _not_a_connect_failure not in pool_logger.filters:
        pool_logger.addFilter(_not_a_connect_failure)
