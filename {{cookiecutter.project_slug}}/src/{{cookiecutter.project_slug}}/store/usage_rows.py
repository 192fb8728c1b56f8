"""The `usage` table: a transcription's row, and the report's sums by user, model or UTC day
(a turn's rows are written by limit_rows.FINISH_TURN)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from .db import connect
from .postgres import PostgresStore

Grouping = Literal["user", "model", "day"]

RECORD_TRANSCRIPTION = """
INSERT INTO usage (
    turn_id, call, user_id, thread_id, model, purpose, input_tokens, output_tokens, audio_bytes
)
VALUES (%(id)s, 1, %(user)s, NULL, %(model)s, 'transcription', %(input)s, %(output)s, %(audio)s)
ON CONFLICT (turn_id, call) DO NOTHING
RETURNING 1
"""


async def insert_transcription(store: PostgresStore, params: dict[str, Any]) -> None:
    await store.execute(RECORD_TRANSCRIPTION, params)


# The turn's calls so far, keyed as limit_rows.FINISH_TURN keys them (each once); today's total.
RECORD_SO_FAR = """
WITH recorded AS (
    INSERT INTO usage AS u (
        turn_id, call, user_id, thread_id, model, purpose, input_tokens, output_tokens
    )
    SELECT %(turn)s::text, c.call, %(user)s::text, %(thread)s::text, c.model, c.purpose,
           c.input, c.output
    FROM unnest(%(models)s::text[], %(purposes)s::text[], %(inputs)s::bigint[],
                %(outputs)s::bigint[]) WITH ORDINALITY AS c(model, purpose, input, output, call)
    ON CONFLICT (turn_id, call) DO NOTHING
    RETURNING u.input_tokens + u.output_tokens AS tokens
),
added AS (
    INSERT INTO daily_usage AS d (user_id, day, tokens)
    SELECT %(user)s::text, (now() AT TIME ZONE 'UTC')::date, sum(tokens) FROM recorded
    HAVING count(*) > 0
    ON CONFLICT (user_id, day) DO UPDATE SET tokens = d.tokens + EXCLUDED.tokens
    RETURNING d.tokens
)
SELECT COALESCE((SELECT tokens FROM added), (
    SELECT tokens FROM daily_usage
    WHERE user_id = %(user)s::text AND day = (now() AT TIME ZONE 'UTC')::date), 0)
"""


async def record_so_far(store: PostgresStore, params: dict[str, Any]) -> int:
    """Record the turn's calls so far (each once) and return the user's tokens today."""
    rows = await store.execute(RECORD_SO_FAR, params)
    return int(rows[0][0]) if rows else 0


GROUP_KEYS: dict[Grouping, str] = {
    "user": "user_id",
    "model": "model",
    "day": "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

REPORT = """
SELECT {key} AS key, count(DISTINCT turn_id) FILTER (WHERE purpose <> 'transcription'), count(*),
       COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0),
       count(*) FILTER (WHERE purpose = 'transcription'), COALESCE(sum(audio_bytes), 0)
FROM usage
WHERE created_at >= COALESCE(%(since)s::timestamptz, '-infinity')
GROUP BY 1
ORDER BY sum(input_tokens) + sum(output_tokens) DESC, 1
"""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One line of the report: a user, a model or a UTC day, and what it used (`calls`
    counts transcriptions too; `turns` only chat turns)."""

    key: str
    turns: int
    calls: int
    input_tokens: int
    output_tokens: int
    transcriptions: int = 0
    audio_bytes: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


COUNTS = [f.name for f in fields(UsageRow)][1:]


async def usage_report(conninfo: str, since: datetime | None, by: Grouping) -> list[UsageRow]:
    """The usage since `since` (all when None), one row per `by`, the biggest first."""
    query = REPORT.format(key=GROUP_KEYS[by])
    async with await connect(conninfo) as conn:
        cursor = await conn.execute(query.encode(), {"since": since})
        rows = await cursor.fetchall()
    return [UsageRow(str(r[0]), *(int(n) for n in r[1:])) for r in rows]
