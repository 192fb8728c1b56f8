"""Tools the agent can call: server tools (`get_time`, `count_down`, `compare_times`) and a
client tool (`switch_theme`). `ctx.context` is an `AppContext` (services.py); a tool's docstring
is what the model reads. List new tools in agent.TOOLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import function_tool
from chatkit.agents import ClientToolCall
from chatkit.types import CustomSummary, CustomTask, ProgressUpdateEvent, URLSource, Workflow
from chatkit.widgets import WidgetRoot

from .catalogue import say
from .services import ToolContext
from .sources import cite
from .widgets import clock_widget, countdown_widget

TIME_ZONE_SOURCE = URLSource(
    url="https://www.iana.org/time-zones",
    title="IANA time zone database",
    description="Where the time zone rules come from",
)

COUNT_DOWN_STEP_SECONDS = 1.0
MAX_COUNT_DOWN = 10


class UnknownTimeZoneError(ValueError):
    """Not an IANA time zone name this machine knows."""


def now_in(timezone: str) -> datetime:
    """The current time in `timezone` (an IANA name such as `Europe/Paris`)."""
    try:
        return datetime.now(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise UnknownTimeZoneError(timezone) from exc


@function_tool
async def get_time(ctx: ToolContext, timezone: str) -> str:
    """Get the current date and time in a time zone, and show it to the user as a clock card.

    Args:
        timezone: An IANA time zone name, such as Europe/Paris, America/New_York or UTC.
    """
    locale = ctx.context.request_context.locale
    progress = say("tools.checking_time", locale, timezone=timezone)
    await ctx.context.stream(ProgressUpdateEvent(icon="clock", text=progress))
    try:
        now = now_in(timezone)
    except UnknownTimeZoneError:
        # An answer the model can read and act on (ask again, pick a real zone): no error event.
        return f"Unknown time zone {timezone!r}. Use an IANA name such as Europe/Paris or UTC."
    await ctx.context.stream_widget(
        clock_widget(timezone, now), copy_text=f"{now:%H:%M} in {timezone}"
    )
    return f"It is {now:%H:%M} on {now:%A %d %B %Y} in {timezone} (UTC offset {now:%z})."


@function_tool
async def count_down(ctx: ToolContext, start: int) -> str:
    """Count down to zero in the chat, one number a second, on a card that updates live.

    Args:
        start: The number to count down from, 1 to 10.
    """
    start = max(1, min(start, MAX_COUNT_DOWN))

    async def frames() -> AsyncGenerator[WidgetRoot, None]:
        # Each state extends the text of the Text with id "countdown": the client receives
        # only the new characters; the last state (a Done badge) replaces the whole card.
        text = ""
        for number in range(start, 0, -1):
            text += f"{number} ... "
            yield countdown_widget(start, text, counting=True)
            await asyncio.sleep(COUNT_DOWN_STEP_SECONDS)
        yield countdown_widget(start, text + "Liftoff!", counting=False)

    await ctx.context.stream_widget(frames(), copy_text=f"Countdown from {start}")
    return f"Counted down from {start} to zero; the user watched it on a card."


@function_tool
async def switch_theme(ctx: ToolContext, theme: Literal["light", "dark"]) -> str:
    """Switch the chat's colour scheme. The user's browser applies it.

    Args:
        theme: `light` or `dark`.
    """
    ctx.context.client_tool_call = ClientToolCall(name="switch_theme", arguments={"theme": theme})
    return f"Asked the browser to switch to the {theme} theme."


@function_tool
async def compare_times(ctx: ToolContext, timezones: list[str]) -> str:
    """Compare the current time in several time zones, showing each check as it happens.

    Args:
        timezones: IANA time zone names, such as Europe/Paris and Asia/Tokyo.
    """
    agent = ctx.context
    if agent.workflow_item is not None:  # e.g. the model's reasoning: close it, or it is lost
        await agent.end_workflow()
    await agent.start_workflow(Workflow(type="custom", tasks=[]))
    lines = []
    for index, timezone in enumerate(timezones[:10]):
        task = CustomTask(title=f"Checking {timezone}", icon="clock", status_indicator="loading")
        await agent.add_workflow_task(task)
        try:
            now = now_in(timezone)
            lines.append(f"{timezone}: {now:%H:%M} (UTC offset {now:%z})")
            done = f"{timezone}: {now:%H:%M}"
        except UnknownTimeZoneError:
            lines.append(f"{timezone}: unknown time zone")
            done = f"{timezone}: unknown"
        finished = task.model_copy(update={"title": done, "status_indicator": "complete"})
        await agent.update_workflow_task(finished, index)
    summary = CustomSummary(title=f"Compared {len(lines)} time zones", icon="clock")
    await agent.end_workflow(summary=summary)
    cite(ctx, TIME_ZONE_SOURCE)  # shown under the model's answer as its source
    return "\n".join(lines) or "No time zones given."
