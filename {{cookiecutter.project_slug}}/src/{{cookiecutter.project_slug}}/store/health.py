"""Whether the database can be reached, told in few log lines: one when it cannot (where, why,
that the app keeps trying), at most one a minute while that lasts, and one when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from ..compat.psycopg_pool import quiet_connection_failures
from .db import redact_secrets

logger = logging.getLogger(__name__)
quiet_connection_failures()  # the pool's line per failed attempt: DatabaseHealth says it once

REPORT_EVERY_SECONDS = 60.0
FIRST_PROBE_SECONDS = 1.0
LONGEST_PROBE_SECONDS = 30.0


class DatabaseHealth:
    """Told of every connection attempt (`failed`, `succeeded`); logs only the changes.

    While the database is down it probes (`probe()`, e.g. `PostgresStore.ping`) with a
    doubling pause up to LONGEST_PROBE_SECONDS, so an idle app notices when it is back.
    """

    def __init__(self, where: str, url: str, *, report_every: float = REPORT_EVERY_SECONDS) -> None:
        self.where = where
        self.url = url
        self.report_every = report_every
        self.down_since: float | None = None
        self.probe: Callable[[], Awaitable[bool]] | None = None
        self._reported_at = 0.0
        self._prober: asyncio.Task[None] | None = None

    @property
    def reachable(self) -> bool:
        """False from a failed connection attempt until a successful one."""
        return self.down_since is None

    def failed(self, exc: BaseException) -> None:
        """A connection attempt failed."""
        now = time.monotonic()
        reason = redact_secrets(" ".join(str(exc).split()) or type(exc).__name__, self.url)
        if self.down_since is None:
            self.down_since = self._reported_at = now
            logger.warning(
                "database unreachable: %s (%s); the app keeps trying, and /health answers 503 "
                "until it is back",
                self.where,
                reason,
            )
            self._start_probing()
        elif now - self._reported_at >= self.report_every:
            self._reported_at = now
            logger.warning(
                "database still unreachable after %.0f s: %s (%s); still trying",
                now - self.down_since,
                self.where,
                reason,
            )

    def succeeded(self) -> None:
        """A connection was made."""
        if self.down_since is not None:
            down_for = time.monotonic() - self.down_since
            self.down_since = None
            logger.warning("database reachable again after %.0f s: %s", down_for, self.where)

    async def close(self) -> None:
        """Stop probing (the store is closing)."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None

    def _start_probing(self) -> None:
        if self.probe is None or (self._prober is not None and not self._prober.done()):
            return
        with contextlib.suppress(RuntimeError):  # no event loop: nothing to probe from
            self._prober = asyncio.get_running_loop().create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        pause = FIRST_PROBE_SECONDS
        while self.down_since is not None and self.probe is not None:
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PROBE_SECONDS)
            try:
                back = await self.probe()
            except Exception as exc:  # a probe that raises is one more failed attempt
                self.failed(exc)
                continue
            if back:
                self.succeeded()


def watched_connection(health: DatabaseHealth) -> type[AsyncConnection[TupleRow]]:
    """A connection class for the pool that tells `health` how each connection attempt went."""

    class WatchedConnection(AsyncConnection[TupleRow]):
        @classmethod
        async def connect(cls, *args: Any, **kwargs: Any) -> Self:
            try:
                conn = await super().connect(*args, **kwargs)
            except psycopg.OperationalError as exc:
                health.failed(exc)
                raise
            health.succeeded()
            return conn

    return WatchedConnection
