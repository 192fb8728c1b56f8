"""The per-user limits' statements (ops/limits.py decides with them): one takes a turn's lease,
one renews it, one finishes the turn and records its usage, one spends from a bucket."""

from __future__ import annotations

from typing import Any

from .postgres import PostgresStore

# The user's bucket of %(kind)s, refilled since last seen (full for a first request).
REFILL = """least(%(per_minute)s::float8, COALESCE(
    (l.buckets -> %(kind)s::text ->> 'allowance')::float8 + %(per_minute)s::float8 / 60
        * (extract(epoch FROM now()) - (l.buckets -> %(kind)s::text ->> 'at')::float8),
    %(per_minute)s::float8))"""

SPENT = """SELECT COALESCE(max(tokens), 0) FROM daily_usage
WHERE user_id = %(user)s::text AND day = (now() AT TIME ZONE 'UTC')::date"""

# This request's input tokens: its thread's newest items' text and its own, within the cap
# (docs/design_decisions.md, "The daily budget reserves this request").
ESTIMATE = """SELECT ceil(least(%(max_input)s::float8, %(request_chars)s::float8 + COALESCE(sum(
    CASE WHEN i.payload->>'type' IN ('user_message', 'assistant_message')
         THEN COALESCE(length(i.payload->>'quoted_text'), 0) + (
              SELECT COALESCE(sum(length(c->>'text')), 0)
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(i.payload->'content') = 'array'
                                             THEN i.payload->'content' END) AS c)
         ELSE octet_length(i.payload::text) END), 0)) / %(chars_per_token)s::float8)
FROM (SELECT payload FROM thread_items WHERE thread_id = %(thread)s::text
      ORDER BY created_at DESC, seq DESC LIMIT %(history)s) AS i"""

# A user's first limited request makes their row; the statements below then find it.
ENSURE_ROW = """
INSERT INTO user_limits (user_id, allowance, checked_at) VALUES (%(user)s::text, 0, now())
ON CONFLICT (user_id) DO NOTHING RETURNING 1
"""


def _start_turn(estimate: str) -> str:
    """Decide and take the lease in one UPDATE, under the row's lock (docs: "Limits")."""
    statement = f"""
UPDATE user_limits AS l
SET (leases, reserved, buckets) = (
    SELECT CASE WHEN d.ok
                THEN d.live || jsonb_build_object(%(lease)s::text, d.at + %(lease_seconds)s::float8)
                ELSE d.live END,
           CASE WHEN d.ok AND %(reserve)s::boolean
                THEN d.held || jsonb_build_object(%(lease)s::text, d.estimate)
                ELSE d.held END,
           CASE WHEN %(per_minute)s::float8 = 0 THEN l.buckets
                ELSE l.buckets || jsonb_build_object(%(kind)s::text, jsonb_build_object(
                    'allowance', d.allowance - CASE WHEN d.ok THEN %(cost)s::float8 ELSE 0 END,
                    'at', d.at)) END
    FROM (
        SELECT s.*,
               (%(per_minute)s::float8 = 0 OR s.allowance >= %(cost)s::float8)
               AND (%(max_streams)s::integer = 0 OR s.streams < %(max_streams)s::integer)
               AND (%(budget)s::bigint = 0
                    OR s.spent + s.reserving + s.estimate < %(budget)s::bigint)
               AND NOT s.busy AS ok
        FROM (
            SELECT extract(epoch FROM now())::float8 AS at, {REFILL} AS allowance,
                   live.leases AS live, live.streams, held.reserved AS held,
                   held.tokens AS reserving, ({SPENT}) AS spent, ({estimate}) AS estimate,
                   (%(exclusive)s::text IS NOT NULL AND EXISTS (
                       SELECT 1 FROM jsonb_object_keys(live.leases) AS k
                       WHERE k LIKE %(exclusive)s::text)) AS busy
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
          ({estimate}),
          (%(exclusive)s::text IS NOT NULL AND EXISTS (
              SELECT 1 FROM jsonb_object_keys(l.leases) AS k
              WHERE k LIKE %(exclusive)s::text AND k <> %(lease)s::text)),
          (SELECT min(CASE WHEN e.left > %(renew_gap)s::float8
                           THEN e.left - %(renew_gap)s::float8 ELSE e.left END)
           FROM (SELECT value::float8 - extract(epoch FROM now()) AS left
                 FROM jsonb_each(l.leases)) AS e)
"""  # noqa: S608 (built from the constants above)
    return " ".join(statement.split())  # under psycopg's 4 KiB, its parse is cached


# No estimate to plan without a budget (docs: "The daily budget reserves this request").
START_TURN = _start_turn("0::float8")
START_BUDGETED_TURN = _start_turn(ESTIMATE)

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

# When the stream ends: release the lease and its reservation (settled by the real usage), write
# one keyed `usage` row per model call (safe to repeat) and add the tokens to the day.
FINISH_TURN = """
WITH released AS (
    UPDATE user_limits
    SET leases = leases - %(lease)s::text,
        reserved = reserved - %(lease)s::text
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


async def _for_user(store: PostgresStore, statement: str, params: dict[str, Any]) -> Any:
    """The one row `statement` returns for the user (their row made first if it is new)."""
    rows = await store.execute(statement, params)
    if not rows:
        await store.execute(ENSURE_ROW, params)
        rows = await store.execute(statement, params)
    return rows[0]


async def take_limits(store: PostgresStore, params: dict[str, Any], *, lease: bool) -> Any:
    """START_TURN's row (granted, allowance, spent, reserved, estimate, busy, seconds to the
    soonest lease renewal or end) when taking a `lease`, else TAKE_TOKEN's (granted, allowance)."""
    turn = START_BUDGETED_TURN if params["budget"] else START_TURN
    return await _for_user(store, turn if lease else TAKE_TOKEN, params)


async def renew_lease(store: PostgresStore, params: dict[str, Any]) -> None:
    await store.execute(RENEW_LEASE, params)


async def finish_lease(store: PostgresStore, params: dict[str, Any]) -> None:
    """Release the lease, record the calls in `usage` and add them to the day (safe to repeat)."""
    await store.execute(FINISH_TURN, params)


def like_prefix(text: str) -> str:
    """A LIKE pattern for what starts with `text`, its wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
