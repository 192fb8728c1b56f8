"""Per-user limits (a rate per kind of request: messages, actions, transcriptions; concurrent
streams; daily tokens), checked in PostgreSQL so they hold across instances: one statement
takes a turn's lease, one finishes it (docs/design_decisions.md, "Limits")."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from ..errors import AppError
from ..store.health import is_outage
from ..store.limit_rows import finish_lease, like_prefix, renew_lease, take_limits
from ..store.postgres import PostgresStore
from .rates import Bucket, Used, rate_limited, refusal
from .usage import CHARS_PER_TOKEN, Meter

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30.0
RENEW_SECONDS = 10.0
FINISH_WAIT_SECONDS = 3600.0
"""How long a turn that ended during a database outage waits to record its usage."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the budget reserves for a turn: its thread's newest `history` items and the
    request's own characters, within `max_input` (estimated in the statement, ESTIMATE)."""

    thread: str | None
    request_chars: int
    history: int
    max_input: int


NO_ESTIMATE = Estimate(None, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class LeaseLimits:
    """A request's bucket, concurrent streams (0: any) and daily token budget (0: none); its
    budget estimate, and `exclusive`: a lease-id prefix one lease at a time may hold."""

    bucket: Bucket
    max_streams: int
    budget: int
    estimate: Estimate = NO_ESTIMATE
    exclusive: str | None = None


@dataclass(slots=True)
class Lease:
    """A request's hold on the user's limits and its meter, until `finish` records the usage."""

    store: PostgresStore
    user_id: str
    meter: Meter
    lease_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    leased: bool = False
    finished: bool = False

    async def keep_leased(self) -> None:
        """Renew the lease every RENEW_SECONDS until cancelled (the stream has ended)."""
        params = {"user": self.user_id, "lease": self.lease_id, "lease_seconds": LEASE_SECONDS}
        while self.leased:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await renew_lease(self.store, params)
            except (psycopg.Error, PoolTimeout) as exc:  # the lease then lapses on its own
                logger.debug("could not renew a stream lease: %s", type(exc).__name__)

    async def finish(self) -> None:
        """Release the lease and record the usage, once (after an outage, when it is back)."""
        if self.finished:
            return
        self.finished = True
        calls = list(self.meter.calls)
        if not self.leased and not calls:
            return
        params = {
            "lease": self.lease_id,
            "user": self.user_id,
            "thread": self.meter.thread_id,
            "models": [c.model for c in calls],
            "purposes": [c.purpose for c in calls],
            "inputs": [c.input_tokens for c in calls],
            "outputs": [c.output_tokens for c in calls],
            "tokens": sum(c.input_tokens + c.output_tokens for c in calls),
        }
        try:
            await finish_lease(self.store, params)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if not is_outage(exc):
                raise
            keep(self._finish_when_back(params))

    async def _finish_when_back(self, params: dict[str, Any]) -> None:
        deadline = time.monotonic() + FINISH_WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            if await self.store.health.wait_up(left):
                try:
                    await finish_lease(self.store, params)
                    return
                except (psycopg.OperationalError, PoolTimeout) as exc:
                    if not is_outage(exc):
                        raise
            await asyncio.sleep(1.0)  # the health check has not noticed yet
        logger.warning(
            "usage of turn %s (%d model calls) not recorded: the database stayed unreachable",
            self.lease_id,
            len(params["models"]),
        )


async def admit(
    limits: LeaseLimits | None,
    bucket: Bucket | None,
    store: PostgresStore,
    user_id: str,
    meter: Meter,
) -> Lease | None:
    """Take the lease under `limits` (the day's tokens on its meter), or spend from `bucket` alone
    (no turn, e.g. a transcription), in one statement; AppError 429 with Retry-After if not."""
    bucket = limits.bucket if limits is not None else bucket
    lease = Lease(store, user_id, meter) if limits is not None else None
    if lease is not None:
        meter.turn_id = lease.lease_id  # the usage rows' key, for the budget notice
    max_streams, budget = (limits.max_streams, limits.budget) if limits else (0, 0)
    exclusive = limits.exclusive if limits else None
    if lease is not None and exclusive is not None:  # one retry of an item at a time
        lease.lease_id = exclusive + lease.lease_id
    elif bucket is None or not (bucket.per_minute or max_streams or budget):
        return lease
    if bucket is None:  # an exclusive lease comes with its limits' bucket
        return lease
    estimate = limits.estimate if limits else NO_ESTIMATE
    params = {
        "user": user_id,
        "lease": lease.lease_id if lease else "",
        "lease_seconds": LEASE_SECONDS,
        "renew_gap": LEASE_SECONDS - RENEW_SECONDS,
        "exclusive": like_prefix(exclusive) if exclusive else None,
        "thread": estimate.thread,
        "history": estimate.history,
        "request_chars": estimate.request_chars,
        "max_input": estimate.max_input,
        "chars_per_token": CHARS_PER_TOKEN,
        "kind": bucket.kind,
        "per_minute": bucket.per_minute,
        "cost": bucket.cost,
        "max_streams": max_streams,
        "budget": budget,
        "reserve": budget > 0,
    }
    row = await take_limits(store, params, lease=lease is not None)
    if lease is None:
        granted, allowance = row
        if not granted:
            raise rate_limited(bucket, allowance)
        return None
    granted, allowance, spent, reserved, estimated, busy, soonest = row
    if busy and not granted:
        message = "this item is already being retried; wait for that answer to end"
        raise AppError(message, status=409, code="retry_running")
    if not granted:
        used = Used(spent, reserved, estimated)
        raise refusal(bucket, max_streams, budget, allowance, used, soonest)
    lease.leased = True
    lease.meter.tokens_before, lease.meter.daily_budget = int(spent), budget
    return lease


_running: set[asyncio.Task[None]] = set()


def keep(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run `work` as a task of its own, kept referenced until it ends; failures are logged."""

    async def logged() -> None:
        try:
            await work
        except Exception:
            logger.exception("could not finish the turn (release its lease, record its usage)")

    task = asyncio.create_task(logged())
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task


async def run_shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if the caller is cancelled; failures are logged."""
    await asyncio.shield(keep(work))
