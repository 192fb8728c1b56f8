"""Widgets: the cards the assistant shows (a clock, a countdown), each a `.widget` file from
https://widgets.chatkit.studio beside this module, filled in with `WidgetTemplate.build()`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from chatkit.widgets import DynamicWidgetRoot, WidgetTemplate

HERE = Path(__file__).parent
# Absolute paths: from_file resolves a relative one by inspecting the call stack.
CLOCK = WidgetTemplate.from_file(str(HERE / "clock.widget"))
COUNTDOWN = WidgetTemplate.from_file(str(HERE / "countdown.widget"))

CLOCK_REFRESH = "clock.refresh"  # the Refresh button's action (actions.py)
CLOCK_ASK = "clock.ask"  # "Ask about this time": the assistant answers about it
CLOCK_SHOW = "clock.show"  # an action without a widget (`sendCustomAction`): a new clock
CLOCK_REFRESHED = "clock.refreshed"  # the client effect after a refresh (the page's onEffect)


def clock_widget(timezone: str, now: datetime) -> DynamicWidgetRoot:
    """A card showing the time `now` in `timezone`, with Refresh and Ask buttons."""
    return CLOCK.build({"timezone": timezone, "time": f"{now:%H:%M}", "day": describe_day(now)})


def countdown_widget(start: int, text: str, counting: bool) -> DynamicWidgetRoot:
    """The countdown card: `text` so far (it grows while `counting`, then a Done badge)."""
    return COUNTDOWN.build({"start": start, "text": text, "counting": counting})


def describe_day(now: datetime) -> str:
    """`Monday 30 November 2026, UTC+01:00`: the date and the zone's offset."""
    offset = now.strftime("%z")
    return f"{now:%A} {now.day} {now:%B %Y}, UTC{offset[:3]}:{offset[3:]}"
