"""Per-user limits (messages per minute, concurrent streams, daily tokens), checked in PostgreSQL
so they hold across instances (docs/design_decisions.md, "Limits")."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from chatkit.types import (
    ChatKitReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    is_streaming_req,
)

from ..context import RequestContext
from ..errors import AppError
from ..settings import Settings
from ..store.postgres import PostgresStore
from .usage import Meter, meter_of

logger = logging.getLogger(__name__)

MESSAGE_REQUESTS = (ThreadsCreateReq, ThreadsAddUserMessageReq, ThreadsRetryAfterItemReq)
STREAM_RETRY_SECONDS = 5  # streams usually end within seconds
MIN_LEASE_SECONDS = 300.0

# Decide and take the lease in one upsert: it locks the user's row, so concurrent requests
# cannot both take the last slot. RETURNING says whether the lease was taken, else why not.
START_TURN = """
WITH spent AS (
    SELECT COALESCE(max(tokens), 0) AS tokens FROM daily_usage
    WHERE user_id = %(user)s::text AND day = (now() AT TIME ZONE 'UTC')::date
),
budget AS (
    SELECT %(budget)s::bigint = 0 OR tokens < %(budget)s::bigint AS ok FROM spent
)
INSERT INTO user_limits AS l (user_id, allowance, checked_at, leases)
SELECT %(user)s::text,
       %(per_minute)s::float8 - CASE WHEN b.ok THEN %(cost)s::float8 ELSE 0 END,
       now(),
       CASE WHEN b.ok
            THEN jsonb_build_object(
                %(lease)s::text, extract(epoch FROM now()) + %(lease_seconds)s::float8)
            ELSE '{}'::jsonb END
FROM budget AS b
ON CONFLICT (user_id) DO UPDATE SET (allowance, checked_at, leases) = (
    SELECT CASE WHEN v.ok THEN v.allowance - %(cost)s::float8 ELSE v.allowance END,
           now(),
           CASE WHEN v.ok
                THEN v.live || jsonb_build_object(
                    %(lease)s::text, extract(epoch FROM now()) + %(lease_seconds)s::float8)
                ELSE v.live END
    FROM (
        SELECT n.allowance, n.live,
               (%(per_minute)s::float8 = 0 OR n.allowance >= %(cost)s::float8)
               AND (%(max_streams)s::integer = 0 OR n.streams < %(max_streams)s::integer)
               AND (SELECT ok FROM budget) AS ok
        FROM (
            -- the bucket refilled since it was last checked; the leases not yet expired
            SELECT least(
                       %(per_minute)s::float8,
                       l.allowance + %(per_minute)s::float8 / 60
                       * extract(epoch FROM now() - l.checked_at)::float8
                   ) AS allowance,
                   COALESCE(jsonb_object_agg(e.key, e.value), '{}'::jsonb) AS live,
                   count(e.key) AS streams
            FROM jsonb_each(l.leases) AS e
            WHERE e.value::float8 > extract(epoch FROM now())
        ) AS n
    ) AS v
)
RETURNING l.leases ? %(lease)s::text, l.allowance, (SELECT tokens FROM spent)
"""

# Release the lease, record each model call (keyed, so it is safe to repeat), add the tokens.
FINISH_TURN = """
WITH released AS (
    UPDATE user_limits SET leases = leases - %(lease)s::text
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


def lease_seconds(settings: Settings) -> float:
    """Longer than a model call with all its retries, and at least five minutes."""
    per_call = settings.openai_timeout * (settings.openai_max_retries + 1)
    return max(MIN_LEASE_SECONDS, per_call + 60.0)


def limited(settings: Settings) -> bool:
    return bool(
        settings.rate_limit_messages_per_minute
        or settings.max_concurrent_streams_per_user
        or settings.user_daily_tokens
    )


@dataclass(slots=True)
class Turn:
    """One streamed request: its lease (if it took one) and its meter, until `finish`."""

    store: PostgresStore
    user_id: str
    meter: Meter
    lease_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    leased: bool = False
    finished: bool = False

    async def finish(self) -> None:
        """Release the lease and record the usage (once; later calls do nothing)."""
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
        }
        await self.store.execute(FINISH_TURN, params)


async def start_turn(
    request: ChatKitReq, store: PostgresStore, context: RequestContext, settings: Settings
) -> Turn | None:
    """The turn of a streamed request, its lease taken (None for others); AppError 429 with
    Retry-After when one of the user's limits refuses it."""
    if not is_streaming_req(request):
        return None
    turn = Turn(store, context.user.id, meter_of(context))
    if not limited(settings):
        return turn
    per_minute = settings.rate_limit_messages_per_minute
    is_message = isinstance(request, MESSAGE_REQUESTS)
    runs_model = not isinstance(request, ThreadsCustomActionReq)
    budget = settings.user_daily_tokens if runs_model else 0
    params = {
        "user": context.user.id,
        "lease": turn.lease_id,
        "lease_seconds": lease_seconds(settings),
        "per_minute": per_minute,
        "cost": 1 if is_message and per_minute else 0,
        "max_streams": settings.max_concurrent_streams_per_user,
        "budget": budget,
    }
    rows = await store.execute(START_TURN, params)
    granted, allowance, tokens_today = rows[0]
    if granted:
        turn.leased = True
        return turn
    raise refusal(settings, float(allowance), int(tokens_today), params)


def refusal(
    settings: Settings, allowance: float, tokens_today: int, params: dict[str, Any]
) -> AppError:
    budget = params["budget"]
    if budget and tokens_today >= budget:
        seconds = seconds_to_utc_midnight()
        return too_many(
            f"daily token budget used ({tokens_today:,} of {budget:,} tokens); "
            "it renews at midnight UTC",
            "daily_budget_exceeded",
            seconds,
        )
    per_minute = params["per_minute"]
    if per_minute and params["cost"] and allowance < params["cost"]:
        seconds = math.ceil((params["cost"] - allowance) * 60 / per_minute)
        return too_many(
            f"too many messages: at most {per_minute} a minute", "rate_limited", seconds
        )
    return too_many(
        f"too many answers streaming at once: at most {settings.max_concurrent_streams_per_user}",
        "too_many_streams",
        STREAM_RETRY_SECONDS,
    )


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
    now = time.time() if now is None else now
    return math.ceil(86400 - now % 86400)


_finishing: set[asyncio.Task[None]] = set()


async def run_shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if the caller is cancelled; failures are logged."""

    async def logged() -> None:
        try:
            await work
        except Exception:
            logger.exception("could not finish the turn (release its lease, record its usage)")

    task = asyncio.create_task(logged())
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)
    await asyncio.shield(task)
