"""Widgets: the cards the assistant shows in the chat (examples: a clock and a countdown).

A widget is a tree of ChatKit components (Card, Title, Text, Button, ...) sent as a thread
item. Design one at https://widgets.chatkit.studio, export it as a `.widget` file next to this
module, load it with `WidgetTemplate.from_file` and fill in its data with `build()`. Buttons
carry an action (`type` + `payload`) that the client sends back with `threads.custom_action`
(or `threads.sync_custom_action`); actions.py handles it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from chatkit.widgets import DynamicWidgetRoot, WidgetTemplate

HERE = Path(__file__).parent
# Absolute paths: from_file resolves a relative one by inspecting the call stack.
CLOCK = WidgetTemplate.from_file(str(HERE / "clock.widget"))
COUNTDOWN = WidgetTemplate.from_file(str(HERE / "countdown.widget"))

CLOCK_REFRESH = "clock.refresh"
"""The clock's Refresh button (actions.py): redraw it with the current time."""
CLOCK_ASK = "clock.ask"
"""The clock's "Ask about this time" button (actions.py): the assistant answers about it."""
CLOCK_SHOW = "clock.show"
"""An action without a widget (`sendCustomAction`): show a new clock for a zone."""
CLOCK_REFRESHED = "clock.refreshed"
"""The client effect sent after a refresh (the dev chat page's `onEffect` shows it)."""


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
