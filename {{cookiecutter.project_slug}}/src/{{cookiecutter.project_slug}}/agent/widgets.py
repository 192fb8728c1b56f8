"""Widget builders: the cards the assistant shows (a clock). Design one at
https://widgets.chatkit.studio and paste its JSON into a builder like `clock_widget`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chatkit.widgets import DynamicWidgetRoot, WidgetRoot

CLOCK_REFRESH = "clock.refresh"  # the Refresh button's action (actions.py)


def clock_widget(timezone: str, now: datetime) -> WidgetRoot:
    """A card showing the time `now` in `timezone`, with a button that refreshes it."""
    card: dict[str, Any] = {
        "type": "Card",
        "size": "sm",
        "children": [
            {"type": "Caption", "value": f"Time in {timezone}"},
            {"type": "Title", "value": now.strftime("%H:%M"), "size": "3xl"},
            {"type": "Text", "value": describe_day(now), "color": "secondary"},
            {
                "type": "Button",
                "label": "Refresh",
                "iconStart": "reload",
                "variant": "outline",
                "onClickAction": {"type": CLOCK_REFRESH, "payload": {"timezone": timezone}},
            },
        ],
    }
    return DynamicWidgetRoot.model_validate(card)


def describe_day(now: datetime) -> str:
    """`Monday 30 November 2026, UTC+01:00`: the date and the zone's offset."""
    offset = now.strftime("%z")
    return f"{now:%A} {now.day} {now:%B %Y}, UTC{offset[:3]}:{offset[3:]}"
