"""Model usage: what each turn's model calls cost, and the `usage report` command.

During a turn, `respond` and the title request add each model call (model, input and output
tokens) to the turn's `Meter`; when the stream ends, limits.py writes them to table `usage`,
one row per call, in the statement that releases the turn's stream lease, and adds their
tokens to the user's row in `daily_usage` (which the daily budget reads).

`usage report [--since DATE] [--by user|model|day] [--json]` sums the rows, across all users,
for the operator: an admin command on a plain connection, like `feedback export`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal, TextIO

from agents import ModelResponse

from ..context import RequestContext
from ..settings import Settings
from ..store.db import admin_command, connect

PACKAGE = __name__.split(".")[0]

Purpose = Literal["answer", "title"]
Grouping = Literal["user", "model", "day"]
GROUPINGS: tuple[Grouping, ...] = ("user", "model", "day")


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One request to the model and the tokens it used."""

    model: str
    purpose: Purpose
    input_tokens: int
    output_tokens: int


@dataclass(slots=True)
class Meter:
    """The model calls of one turn, collected until the turn's stream ends."""

    thread_id: str | None = None
    calls: list[ModelCall] = field(default_factory=list)
    tokens_before: int = 0
    """The user's tokens today before this turn (read when the daily budget is checked)."""
    daily_budget: int = 0
    """USER_DAILY_TOKENS when this turn was checked against it, else 0."""

    @property
    def tokens(self) -> int:
        """The tokens of this turn's calls so far."""
        return sum(call.input_tokens + call.output_tokens for call in self.calls)

    def add(self, model: str, purpose: Purpose, input_tokens: int, output_tokens: int) -> None:
        """Count one model call."""
        self.calls.append(ModelCall(model, purpose, max(input_tokens, 0), max(output_tokens, 0)))

    def add_responses(self, model: str, responses: Iterable[ModelResponse]) -> None:
        """Count the calls of an Agents SDK run (`result.raw_responses`: one per model call)."""
        for response in responses:
            self.add(model, "answer", response.usage.input_tokens, response.usage.output_tokens)


METER_KEY = ("usage", "meter")


def meter_of(context: RequestContext) -> Meter:
    """The meter of this request's turn (made on first use; the request context carries it)."""
    meter = context.cache.get(METER_KEY)
    if not isinstance(meter, Meter):
        meter = context.cache[METER_KEY] = Meter()
    return meter


# --- the report ---------------------------------------------------------------------------------

GROUP_KEYS: dict[Grouping, str] = {
    "user": "user_id",
    "model": "model",
    "day": "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}

REPORT = """
SELECT {key} AS key, count(DISTINCT turn_id), count(*),
       COALESCE(sum(input_tokens), 0), COALESCE(sum(output_tokens), 0)
FROM usage
WHERE created_at >= COALESCE(%(since)s::timestamptz, '-infinity')
GROUP BY 1
ORDER BY sum(input_tokens) + sum(output_tokens) DESC, 1
"""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One line of the report: a user, a model or a UTC day, and what it used."""

    key: str
    turns: int
    calls: int
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


async def usage_report(conninfo: str, since: datetime | None, by: Grouping) -> list[UsageRow]:
    """The usage since `since` (all when None), one row per `by`, the biggest first."""
    query = REPORT.format(key=GROUP_KEYS[by])
    async with await connect(conninfo) as conn:
        cursor = await conn.execute(query.encode(), {"since": since})
        rows = await cursor.fetchall()
    return [UsageRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]


def format_table(rows: Sequence[UsageRow], by: Grouping) -> str:
    """The rows as an aligned text table, with a total line."""
    header = (by, "turns", "model calls", "input tokens", "output tokens", "total tokens")
    total = UsageRow(
        "total",
        sum(r.turns for r in rows),
        sum(r.calls for r in rows),
        sum(r.input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
    )
    lines = [
        (
            r.key,
            *(
                f"{n:,}"
                for n in (r.turns, r.calls, r.input_tokens, r.output_tokens, r.total_tokens)
            ),
        )
        for r in [*rows, total]
    ]
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
    """`usage report`: a table (or JSON) on stdout, errors as one line on stderr.

    Exit codes: 0 done, 1 the database cannot be reached or has no usage table.
    """
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
