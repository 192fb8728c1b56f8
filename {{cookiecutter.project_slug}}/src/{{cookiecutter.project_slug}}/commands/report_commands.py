"""`usage report` (model usage by user, model or UTC day) and `feedback export` (JSON lines)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, TextIO

from ..settings import Settings
from ..store.feedback_export import export_feedback
from ..store.usage_rows import COUNTS, Grouping, UsageRow, usage_report
from .admin import admin_command

GROUPINGS: tuple[Grouping, ...] = ("user", "model", "day")


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


async def usage_report_command(
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


async def feedback_export_command(settings: Settings, since: datetime | None) -> int:
    """`feedback export`: JSON lines on stdout; the exit code."""

    async def export(conninfo: str) -> int:
        await export_feedback(conninfo, sys.stdout, since)
        sys.stdout.flush()
        return 0

    try:
        return await admin_command(settings, "feedback export", "no feedback table", export)
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
