"""Per-user limits (a rate per kind of request: messages, actions, transcriptions; concurrent
streams; daily tokens), checked in PostgreSQL so they hold across instances: one statement
takes a turn's lease, one finishes it (docs/design_decisions.md, "Limits")."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import psycopg
from chatkit.types import (
    ChatKitReq,
    InputTranscribeReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    is_streaming_req,
)
from psycopg_pool import PoolTimeout

from ..context import RequestContext
from ..errors import AppError
from ..settings import Settings
from ..store.health import is_outage
from ..store.postgres import PostgresStore
from .usage import Meter, meter_of

logger = logging.getLogger(__name__)

MESSAGE_REQUESTS = (ThreadsCreateReq, ThreadsAddUserMessageReq, ThreadsRetryAfterItemReq)
ACTION_REQUESTS = (ThreadsCustomActionReq, ThreadsSyncCustomActionReq)
LEASE_SECONDS = 30.0
RENEW_SECONDS = 10.0
FINISH_WAIT_SECONDS = 3600.0
"""How long a turn that ended during a database outage waits to record its usage."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """One kind of request's rate: `per_minute` (0: unlimited), `cost` per request."""

    kind: str
    per_minute: int
    cost: int = 1


# The user's bucket of %(kind)s, refilled since last seen (full for a first request).
REFILL = """least(%(per_minute)s::float8, COALESCE(
    (l.buckets -> %(kind)s::text ->> 'allowance')::float8 + %(per_minute)s::float8 / 60
        * (extract(epoch FROM now()) - (l.buckets -> %(kind)s::text ->> 'at')::float8),
    %(per_minute)s::float8))"""

SPENT = """SELECT COALESCE(max(tokens), 0) FROM daily_usage
WHERE user_id = %(user)s::text AND day = (now() AT TIME ZONE 'UTC')::date"""

# A user's first limited request makes their row; the statements below then find it.
ENSURE_ROW = """
INSERT INTO user_limits (user_id, allowance, checked_at) VALUES (%(user)s::text, 0, now())
ON CONFLICT (user_id) DO NOTHING RETURNING 1
"""

# Decide and take the lease in one UPDATE: it locks the user's row and sees its latest
# version, so concurrent requests cannot both take the last slot (docs: "Limits").
START_TURN = f"""
UPDATE user_limits AS l
SET (leases, reserved, buckets) = (
    SELECT CASE WHEN d.ok
                THEN d.live || jsonb_build_object(%(lease)s::text, d.at + %(lease_seconds)s::float8)
                ELSE d.live END,
           CASE WHEN d.ok AND %(reserve)s::boolean
                THEN d.held || jsonb_build_object(%(lease)s::text, l.turn_tokens)
                ELSE d.held END,
           CASE WHEN %(per_minute)s::float8 = 0 THEN l.buckets
                ELSE l.buckets || jsonb_build_object(%(kind)s::text, jsonb_build_object(
                    'allowance', d.allowance - CASE WHEN d.ok THEN %(cost)s::float8 ELSE 0 END,
                    'at', d.at)) END
    FROM (
        SELECT s.*,
               (%(per_minute)s::float8 = 0 OR s.allowance >= %(cost)s::float8)
               AND (%(max_streams)s::integer = 0 OR s.streams < %(max_streams)s::integer)
               AND (%(budget)s::bigint = 0 OR s.spent + s.reserving < %(budget)s::bigint) AS ok
        FROM (
            SELECT extract(epoch FROM now())::float8 AS at, {REFILL} AS allowance,
                   live.leases AS live, live.streams, held.reserved AS held,
                   held.tokens AS reserving, ({SPENT}) AS spent
            FROM (
                SELECT COALESCE(jsonb_object_agg(e.key, e.value), jsonb_build_object()) AS leases,
                       count(*) AS streams
                FROM jsonb_each(l.leases) AS e
                WHERE e.value::float8 > extract(epoch FROM now())
            ) AS live,
            LATERAL (
                SELECT COALESCE(jsonb_object_agg(r.key, r.value), jsonb_build_object()) AS reserved,
                       COALESCE(sum(r.value::float8), 0) AS tokens
                FROM jsonb_each(l.reserved) AS r
                WHERE live.leases ? r.key
            ) AS held
        ) AS s
    ) AS d
)
WHERE l.user_id = %(user)s::text
RETURNING l.leases ? %(lease)s::text,
          COALESCE((l.buckets -> %(kind)s::text ->> 'allowance')::float8, 0),
          ({SPENT}),
          (SELECT COALESCE(sum(value::float8), 0) FROM jsonb_each(l.reserved)),
          (SELECT min(value::float8) FROM jsonb_each(l.leases)) - extract(epoch FROM now())
"""  # noqa: S608 (built from the constants above)

# A request that holds no lease (it streams nothing): spend from its bucket, or not.
TAKE_TOKEN = f"""
UPDATE user_limits AS l
SET buckets = l.buckets || jsonb_build_object(%(kind)s::text, (
    SELECT jsonb_build_object(
        'allowance', CASE WHEN v.ok THEN v.allowance - %(cost)s::float8 ELSE v.allowance END,
        'at', extract(epoch FROM now())::float8, 'ok', v.ok)
    FROM (SELECT r.allowance, r.allowance >= %(cost)s::float8 AS ok
          FROM (SELECT {REFILL} AS allowance) AS r) AS v))
WHERE l.user_id = %(user)s::text
RETURNING (l.buckets -> %(kind)s::text ->> 'ok')::boolean,
          (l.buckets -> %(kind)s::text ->> 'allowance')::float8
"""  # noqa: S608 (built from the constants above)

RENEW_LEASE = """
UPDATE user_limits
SET leases = jsonb_set(leases, ARRAY[%(lease)s::text],
                       to_jsonb(extract(epoch FROM now())::float8 + %(lease_seconds)s::float8))
WHERE user_id = %(user)s::text AND leases ? %(lease)s::text
RETURNING 1
"""

# When the stream ends: release the lease and reservation, update the turn estimate, write
# one keyed `usage` row per model call (safe to repeat) and add the tokens to the day.
FINISH_TURN = """
WITH released AS (
    UPDATE user_limits
    SET leases = leases - %(lease)s::text,
        reserved = reserved - %(lease)s::text,
        turn_tokens = CASE WHEN reserved ? %(lease)s::text
                           THEN greatest(%(tokens)s::float8, turn_tokens / 2)
                           ELSE turn_tokens END
    WHERE user_id = %(user)s::text AND leases ? %(lease)s::text
),
recorded AS (
    INSERT INTO usage AS u (
        turn_id, call, user_id, thread_id, model, purpose, input_tokens, output_tokens
    )
    SELECT %(lease)s::text, c.call, %(user)s::text, %(thread)s::text, c.model, c.purpose,
           c.input, c.output
    FROM unnest(%(models)s::text[], %(purposes)s::text[], %(inputs)s::bigint[],
                %(outputs)s::bigint[]) WITH ORDINALITY AS c(model, purpose, input, output, call)
    ON CONFLICT (turn_id, call) DO NOTHING
    RETURNING u.input_tokens + u.output_tokens AS tokens
)
INSERT INTO daily_usage AS d (user_id, day, tokens)
SELECT %(user)s::text, (now() AT TIME ZONE 'UTC')::date, sum(tokens) FROM recorded
HAVING count(*) > 0
ON CONFLICT (user_id, day) DO UPDATE SET tokens = d.tokens + EXCLUDED.tokens
RETURNING d.tokens
"""


async def run_limits(store: PostgresStore, statement: str, params: dict[str, Any]) -> Any:
    """The one row `statement` returns for the user (their row made first if it is new)."""
    rows = await store.execute(statement, params)
    if not rows:
        await store.execute(ENSURE_ROW, params)
        rows = await store.execute(statement, params)
    return rows[0]


@dataclass(slots=True)
class Turn:
    """One limited request: its lease (if it took one) and its meter, until `finish`."""

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
                await self.store.execute(RENEW_LEASE, params)
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
            await self.store.execute(FINISH_TURN, params)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if not is_outage(exc):
                raise
            keep(self._finish_when_back(params))

    async def _finish_when_back(self, params: dict[str, Any]) -> None:
        deadline = time.monotonic() + FINISH_WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            if await self.store.health.wait_up(left):
                try:
                    await self.store.execute(FINISH_TURN, params)
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


def request_limits(
    request: ChatKitReq, settings: Settings, action_runs_model: bool
) -> tuple[Bucket, int, int] | None:
    """The bucket, stream limit and budget that apply to `request` (None: not limited)."""
    sync = isinstance(request, ThreadsSyncCustomActionReq)
    if not (sync or is_streaming_req(request)):
        return None
    if isinstance(request, ACTION_REQUESTS):
        bucket = Bucket("actions", settings.rate_limit_actions_per_minute)
        runs_model = action_runs_model
    else:
        per_minute = settings.rate_limit_messages_per_minute
        bucket = Bucket("messages", per_minute if isinstance(request, MESSAGE_REQUESTS) else 0)
        runs_model = True
    streams = 0 if sync else settings.max_concurrent_streams_per_user
    return bucket, streams, settings.user_daily_tokens if runs_model else 0


async def start_turn(
    request: ChatKitReq,
    store: PostgresStore,
    context: RequestContext,
    settings: Settings,
    action_runs_model: bool = False,
) -> Turn | None:
    """The turn of a streamed request or a synchronous action, its lease taken and the day's
    tokens on its meter (None for other requests); AppError 429 with Retry-After if refused."""
    limits = request_limits(request, settings, action_runs_model)
    if limits is None:
        return None
    bucket, max_streams, budget = limits
    turn = Turn(store, context.user.id, meter_of(context))
    turn.meter.turn_id = turn.lease_id
    if not (bucket.per_minute or max_streams or budget):
        return turn
    params = {
        "user": context.user.id,
        "lease": turn.lease_id,
        "lease_seconds": LEASE_SECONDS,
        "kind": bucket.kind,
        "per_minute": bucket.per_minute,
        "cost": bucket.cost,
        "max_streams": max_streams,
        "budget": budget,
        "reserve": budget > 0,
    }
    granted, allowance, spent, reserved, soonest = await run_limits(store, START_TURN, params)
    if granted:
        turn.leased = True
        turn.meter.tokens_before, turn.meter.daily_budget = int(spent), budget
        return turn
    if budget and spent >= budget:
        raise too_many(
            f"daily token budget used ({spent:,} of {budget:,} tokens); it renews at midnight UTC",
            "daily_budget_exceeded",
            seconds_to_utc_midnight(),
        )
    until_a_lease_ends = math.ceil(soonest or 1)
    if budget and spent + reserved >= budget:
        raise too_many(
            f"daily token budget nearly used ({spent:,} of {budget:,} tokens, about "
            f"{round(reserved):,} more held by your answers still running)",
            "daily_budget_exceeded",
            until_a_lease_ends,
        )
    if bucket.per_minute and allowance < bucket.cost:
        raise rate_limited(bucket, allowance)
    raise too_many(
        f"too many answers streaming at once: at most {max_streams}",
        "too_many_streams",
        until_a_lease_ends,
    )


async def check_transcription(
    request: ChatKitReq, store: PostgresStore, context: RequestContext, settings: Settings
) -> None:
    """Take one of the user's transcriptions this minute (input.transcribe), or AppError 429."""
    if isinstance(request, InputTranscribeReq):
        per_minute = settings.rate_limit_transcriptions_per_minute
        await take_token(store, context.user.id, Bucket("transcriptions", per_minute))


async def take_token(store: PostgresStore, user_id: str, bucket: Bucket) -> None:
    """Spend from the user's `bucket` for a request that holds no lease, or 429."""
    if not bucket.per_minute:
        return
    params = {"user": user_id, "kind": bucket.kind, "per_minute": bucket.per_minute}
    granted, allowance = await run_limits(store, TAKE_TOKEN, {**params, "cost": bucket.cost})
    if not granted:
        raise rate_limited(bucket, allowance)


def rate_limited(bucket: Bucket, allowance: float) -> AppError:
    seconds = math.ceil((bucket.cost - allowance) * 60 / bucket.per_minute)
    message = f"too many {bucket.kind}: at most {bucket.per_minute} a minute"
    return too_many(message, "rate_limited", seconds)


def too_many(message: str, code: str, seconds: int) -> AppError:
    seconds = max(1, seconds)
    return AppError(
        message,
        status=429,
        code=code,
        headers={"Retry-After": str(seconds)},
        retry_after=seconds,
    )


def seconds_to_utc_midnight(now: float | None = None) -> int:
    """Whole seconds until the next UTC day begins."""
    now = time.time() if now is None else now
    return math.ceil(86400 - now % 86400)


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
