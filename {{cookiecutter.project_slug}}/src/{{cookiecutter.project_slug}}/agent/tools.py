"""Tools the agent can call (examples: a server tool and a client tool).

A server tool runs here: a typed function decorated with `@function_tool`, whose docstring
tells the model what it does and what each argument means. It may stream progress and widgets
into the chat through `ctx.context` (an `AppContext`, services.py) and returns what the model
reads. A client tool runs in the browser: the tool records `ctx.context.client_tool_call`,
the agent stops there (agent.py lists it in CLIENT_TOOLS), the client runs it and sends the
result back with `threads.add_client_tool_output`, and the model continues with it.

Add your tool here (or in a module beside this one) and list it in agent.TOOLS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import function_tool
from chatkit.agents import ClientToolCall
from chatkit.types import ProgressUpdateEvent

from .services import ToolContext
from .widgets import clock_widget


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
    await ctx.context.stream(
        ProgressUpdateEvent(icon="clock", text=f"Checking the time in {timezone}")
    )
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
async def switch_theme(ctx: ToolContext, theme: Literal["light", "dark"]) -> str:
    """Switch the chat's colour scheme. The user's browser applies it.

    Args:
        theme: `light` or `dark`.
    """
    ctx.context.client_tool_call = ClientToolCall(name="switch_theme", arguments={"theme": theme})
    return f"Asked the browser to switch to the {theme} theme."
