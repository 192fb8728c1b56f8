"""Model usage: each turn's model calls on a `Meter` (limits.py writes them when the stream
ends), each transcription (`record_transcription`, not counted in the daily budget), and the
`usage report` admin command."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, TextIO

from agents import ModelResponse

from ..context import RequestContext
from ..settings import Settings
from ..store.db import admin_command, connect
from ..store.postgres import PostgresStore

logger = logging.getLogger(__name__)

PACKAGE = __name__.split(".")[0]

Purpose = Literal["answer", "title", "transcription"]
Grouping = Literal["user", "model", "day"]
GROUPINGS: tuple[Grouping, ...] = ("user", "model", "day")


@dataclass(frozen=True, slots=True)
class ModelCall:
    model: str
    purpose: Purpose
    input_tokens: int
    output_tokens: int


@dataclass(slots=True)
class Meter:
    thread_id: str | None = None
    calls: list[ModelCall] = field(default_factory=list)
    tokens_before: int = 0
    """The user's tokens today before this turn (read when the daily budget is checked)."""
    daily_budget: int = 0
    """USER_DAILY_TOKENS when this turn was checked against it, else 0."""
    turn_id: str | None = None  # the turn's key in `usage` (its lease id)

    @property
    def tokens(self) -> int:
        """The tokens of this turn's calls so far."""
        return sum(call.input_tokens + call.output_tokens for call in self.calls)

    def add(self, model: str, purpose: Purpose, input_tokens: int, output_tokens: int) -> None:
        self.calls.append(ModelCall(model, purpose, max(input_tokens, 0), max(output_tokens, 0)))

    def add_responses(self, model: str, responses: Iterable[ModelResponse]) -> None:
        """The calls of an Agents SDK run (`result.raw_responses`)."""
        for response in responses:
            self.add(model, "answer", response.usage.input_tokens, response.usage.output_tokens)


METER_KEY = ("usage", "meter")


def meter_of(context: RequestContext) -> Meter:
    """The meter of this request's turn (kept in the request context)."""
    meter = context.cache.get(METER_KEY)
    if not isinstance(meter, Meter):
        meter = context.cache[METER_KEY] = Meter()
    return meter


# The turn's calls so far, keyed as limits.FINISH_TURN keys them (counted once); the day's total.
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


async def tokens_today(store: PostgresStore, meter: Meter, user_id: str) -> int:
    """The user's tokens today, this turn's calls recorded first, so the budget notice is never
    a turn behind (docs/design_decisions.md); on a database error, the meter's estimate."""
    calls = list(meter.calls)
    estimate = meter.tokens_before + meter.tokens
    if meter.turn_id is None:
        return estimate
    params = {
        "turn": meter.turn_id,
        "user": user_id,
        "thread": meter.thread_id,
        "models": [c.model for c in calls],
        "purposes": [c.purpose for c in calls],
        "inputs": [c.input_tokens for c in calls],
        "outputs": [c.output_tokens for c in calls],
    }
    try:
        rows = await store.execute(RECORD_SO_FAR, params)
    except Exception as exc:
        logger.debug("could not read today's usage: %s", type(exc).__name__)
        return estimate
    return max(int(rows[0][0]), estimate) if rows else estimate


@dataclass(frozen=True, slots=True)
class TranscriptionCall:
    """One dictation request to the provider: its model, the recording's size, the tokens."""

    model: str
    audio_bytes: int
    input_tokens: int = 0
    output_tokens: int = 0


RECORD_TRANSCRIPTION = """
INSERT INTO usage (
    turn_id, call, user_id, thread_id, model, purpose, input_tokens, output_tokens, audio_bytes
)
VALUES (%(id)s, 1, %(user)s, NULL, %(model)s, 'transcription', %(input)s, %(output)s, %(audio)s)
ON CONFLICT (turn_id, call) DO NOTHING
RETURNING 1
"""


async def record_transcription(store: PostgresStore, user_id: str, call: TranscriptionCall) -> None:
    """Write one `usage` row for a transcription; a failure is logged (the user keeps the text)."""
    params = {
        "id": uuid.uuid4().hex,
        "user": user_id,
        "model": call.model,
        "input": max(call.input_tokens, 0),
        "output": max(call.output_tokens, 0),
        "audio": call.audio_bytes,
    }
    try:
        await store.execute(RECORD_TRANSCRIPTION, params)
    except Exception:
        logger.exception("could not record a transcription's usage")


# --- the report ---------------------------------------------------------------------------------

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


def format_table(rows: Sequence[UsageRow], by: Grouping) -> str:
    """The rows as an aligned text table with a total line."""
    header: tuple[str, ...] = (by, "turns", "model calls", "input tokens", "output tokens")
    header += ("total tokens",)
    total = UsageRow(
        "total",
        *(sum(getattr(r, name) for r in rows) for name in COUNTS),
    )
    dictation = total.transcriptions > 0
    if dictation:
        header += ("transcriptions", "audio bytes")

    def cells(r: UsageRow) -> tuple[str, ...]:
        numbers = [r.turns, r.calls, r.input_tokens, r.output_tokens, r.total_tokens]
        numbers += [r.transcriptions, r.audio_bytes] if dictation else []
        return (r.key, *(f"{n:,}" for n in numbers))

    lines = [cells(r) for r in [*rows, total]]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule, *map(render, lines[:-1]), rule, render(lines[-1])])


def report_json(rows: Sequence[UsageRow], by: Grouping, since: datetime | None) -> str:
    """The rows as one JSON object: what was asked, and a list of rows with their totals."""
    body: dict[str, Any] = {
        "by": by,
        "since": since.isoformat() if since else None,
        "rows": [{**asdict(r), "total_tokens": r.total_tokens} for r in rows],
    }
    return json.dumps(body, indent=2)


async def report_command(
    settings: Settings,
    since: datetime | None,
    by: Grouping,
    as_json: bool,
    out: TextIO | None = None,
) -> int:
    """`usage report`: a table (or JSON) on stdout; the exit code."""
    out = out or sys.stdout

    async def report(conninfo: str) -> int:
        rows = await usage_report(conninfo, since, by)
        if as_json:
            print(report_json(rows, by, since), file=out)
        elif rows:
            print(format_table(rows, by), file=out)
        else:
            since_text = f" since {since.isoformat()}" if since else ""
            print(f"no model usage recorded{since_text}", file=out)
        return 0

    return await admin_command(settings, "usage report", "no usage table", report)
