"""Whether the database answers. An outage is three kinds of log line (began, each minute,
ended); meanwhile requests get 503 at once and one probe, backing off, is all that logs in."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from psycopg_pool import PoolTimeout

logger = logging.getLogger(__name__)

FIRST_PROBE_SECONDS = 0.5
MAX_PROBE_SECONDS = 10.0
"""The longest pause between probes: how long an app may take to notice the database back."""
REPORT_SECONDS = 60.0
"""While an outage lasts, one line at most this often."""
MAX_CAUSE_CHARS = 200
# SQLSTATEs that mean "cannot talk to the server", beside class 08 (connection exceptions):
# admin shutdown, crash shutdown, cannot connect now, too many connections.
OUTAGE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


class DatabaseUnavailable(psycopg.OperationalError):
    """The database is known to be down: raised without trying it (the app answers 503)."""


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (not a query's own failure such as
    a deadlock or a cancelled statement)."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in OUTAGE_STATES


def one_line(exc: BaseException, redact: Callable[[str], str]) -> str:
    """`Type: message` on one line, passed through `redact` (passwords), at most 200 chars."""
    message = " ".join(str(exc).split())
    text = redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    return text if len(text) <= MAX_CAUSE_CHARS else text[: MAX_CAUSE_CHARS - 1] + "…"


class DatabaseHealth:
    """Up or down, as the store's statements and one probe find out: a statement that fails as
    an outage would calls `suspect`; while the probe fails, `admit` refuses every statement at
    once and the probe repeats, backing off; then `recovered` runs (the store replaces its pool)."""

    def __init__(
        self,
        where: str,
        probe: Callable[[], Awaitable[None]],
        recovered: Callable[[], Awaitable[None]],
        redact: Callable[[str], str] = str,
    ) -> None:
        self.where = where
        self.probe = probe
        self.recovered = recovered
        self.redact = redact
        self.down = False
        self.refused = 0
        self.verified = False
        self.reported: Problem | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._watcher: asyncio.Task[None] | None = None

    def admit(self) -> None:
        """Refuse (DatabaseUnavailable) while the database is known to be down."""
        if self.down:
            self.refused += 1
            raise DatabaseUnavailable("the database is not reachable")

    def suspect(self, exc: BaseException | None = None) -> None:
        """A statement failed as an outage would (or the app starts): probe, unless one runs."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def wait_up(self, timeout: float) -> bool:  # noqa: ASYNC109 (a deadline, not I/O)
        """Wait until the database is not known to be down; False after `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout)
        return self._up.is_set()

    async def close(self) -> None:
        """Stop probing (the app is shutting down)."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher

    async def _try(self) -> BaseException | None:
        try:
            await self.probe()
        except Exception as exc:
            return exc
        return None

    async def _watch(self) -> None:
        failure = await self._try()
        if failure is None:
            return
        began = time.monotonic()
        self.down, self.refused, self.verified = True, 0, False
        self._up.clear()
        logger.warning(
            "database unreachable: %s (%s); requests get 503 until it answers",
            self.where,
            one_line(failure, self.redact),
        )
        last_report = time.monotonic()  # after the line: lines stay REPORT_SECONDS apart
        delay = FIRST_PROBE_SECONDS
        try:
            while True:
                await asyncio.sleep(delay * random.uniform(0.9, 1.1))  # noqa: S311 (jitter)
                delay = min(delay * 2, MAX_PROBE_SECONDS)
                if (failure := await self._try()) is None:
                    break
                now = time.monotonic()
                if now - last_report >= REPORT_SECONDS:
                    logger.warning(
                        "database still unreachable after %.0f s (%d requests refused): %s",
                        now - began,
                        self.refused,
                        one_line(failure, self.redact),
                    )
                    last_report = time.monotonic()
            await self.recovered()
        finally:
            self.down = False
            self._up.set()
        logger.warning(
            "database reachable again after %.0f s: %s (%d requests refused meanwhile)",
            time.monotonic() - began,
            self.where,
            self.refused,
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """Why /health answers 503: `what` names it, `detail` says it in a line."""

    what: str
    detail: str
