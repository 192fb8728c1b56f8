"""Per-user limits, kept in PostgreSQL so that they hold across instances.

Before a streamed request starts, one statement (`START_TURN`) checks the user's limits and,
when they allow it, takes a stream lease; a refusal is a 429 JSON error with `Retry-After`:

- messages per minute (RATE_LIMIT_MESSAGES_PER_MINUTE): `threads.create`,
  `threads.add_user_message` and `threads.retry_after_item`, the requests that send the model
  a user message, and custom actions whose handler calls the model (`runs_model`). A token
  bucket: a minute's worth may come at once, then they refill evenly;
- concurrent streams (MAX_CONCURRENT_STREAMS_PER_USER): every streamed request holds a lease
  while it streams; custom actions too (a handler may call the model, and a stream is what
  this limit counts);
- a daily token budget (USER_DAILY_TOKENS, UTC days): requests that run the model (all
  streamed ones but custom actions that do not) are refused once the user's tokens today
  reach it. A turn that starts under the budget runs to its end, so a user may overshoot by
  one turn; from 90% on, each answer ends with a notice saying so (chat/notices.py).

When the stream ends, however it ends (done, failed, or the client went away), one statement
(`FINISH_TURN`) releases the lease and records the turn's model usage (usage.py), once the
response has ended: no client waits for it. A lease expires after `lease_seconds` (longer
than a model call with its retries), so an instance that dies mid-stream blocks nothing for
long. With every limit at 0 there is no check at all (the usage is still recorded).
Table `user_limits` is UNLOGGED (migration 0005): the check waits for no disk flush.
"""

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
STREAM_RETRY_SECONDS = 5
"""Retry-After when every stream slot is taken (streams usually end within seconds)."""
MIN_LEASE_SECONDS = 300.0

# One statement: decide and, if allowed, take the lease. The upsert locks the user's row, and
# ON CONFLICT DO UPDATE sees its latest version even when another instance changed it
# after this statement began, so concurrent requests cannot both take the last slot. `spent`
# reads today's tokens (a snapshot: a turn finishing meanwhile may be missed, by one turn).
# A new user gets a full bucket; only the budget can refuse them. RETURNING says whether the
# lease was taken and, if not, enough to tell why.
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

# One statement when the stream ends: release the lease, write one `usage` row per model call
# (the turn and call number are the key, so running it twice adds nothing), and add the
# tokens to the user's day. Data-modifying CTEs run whether or not anything reads them.
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
    """How long a stream lease lasts unless released: longer than a model call with all its
    retries, and at least five minutes."""
    per_call = settings.openai_timeout * (settings.openai_max_retries + 1)
    return max(MIN_LEASE_SECONDS, per_call + 60.0)


def limited(settings: Settings) -> bool:
    """Whether any per-user limit is on (with none, there is nothing to check)."""
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
    request: ChatKitReq,
    store: PostgresStore,
    context: RequestContext,
    settings: Settings,
    *,
    runs_model: bool | None = None,
) -> Turn | None:
    """The turn of a streamed request, with its lease taken (None for other requests).

    `runs_model`: whether it may call the model (default: all but custom actions); a custom
    action that does counts as a message. The user's tokens so far today and the budget go
    on the turn's meter (the answer warns when the budget is nearly spent).
    Raises AppError 429 (with Retry-After) when one of the user's limits refuses it.
    """
    if not is_streaming_req(request):
        return None
    turn = Turn(store, context.user.id, meter_of(context))
    if not limited(settings):
        return turn
    per_minute = settings.rate_limit_messages_per_minute
    is_action = isinstance(request, ThreadsCustomActionReq)
    if runs_model is None:
        runs_model = not is_action
    is_message = isinstance(request, MESSAGE_REQUESTS) or (is_action and runs_model)
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
        turn.meter.tokens_before, turn.meter.daily_budget = int(tokens_today), budget
        return turn
    raise refusal(settings, float(allowance), int(tokens_today), params)


def refusal(
    settings: Settings, allowance: float, tokens_today: int, params: dict[str, Any]
) -> AppError:
    """The 429 for a refused turn: which limit, and when to try again."""
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
    """Whole seconds until the next UTC day begins."""
    now = time.time() if now is None else now
    return math.ceil(86400 - now % 86400)


_finishing: set[asyncio.Task[None]] = set()


async def run_shielded(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` to its end even if the caller is cancelled (the caller stops waiting, the
    work goes on); failures are logged, not raised."""

    async def logged() -> None:
        try:
            await work
        except Exception:
            logger.exception("could not finish the turn (release its lease, record its usage)")

    task = asyncio.create_task(logged())
    _finishing.add(task)
    task.add_done_callback(_finishing.discard)
    await asyncio.shield(task)
