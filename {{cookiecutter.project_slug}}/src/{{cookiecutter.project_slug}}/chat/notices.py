"""Notices: what the service tells the user beside an answer (a `NoticeEvent`, shown by the
client, never stored): attachments the answer could not read, a daily budget nearly spent."""

from __future__ import annotations

from collections.abc import Sequence

from chatkit.types import Attachment, NoticeEvent

from ..agent.catalogue import say
from ..ops.usage import Meter
from .inline_files import human_size

NEARLY_SPENT = 0.9
"""The share of USER_DAILY_TOKENS from which each answer warns."""
MAX_NAMES = 3


def attachments_notice(
    withheld: Sequence[Attachment], sent: int, budget: int, locale: str = "en"
) -> NoticeEvent:
    """The notice for a message whose attachments did not all fit in the model request
    (MAX_MODEL_INPUT_BYTES): which ones the answer did not see."""
    names = ", ".join(quoted(a.name) for a in withheld[:MAX_NAMES])
    extra = len(withheld) - MAX_NAMES
    more = say("attachments.more", locale, count=extra) if extra > 0 else ""
    return NoticeEvent(
        level="warning",
        title=say("attachments.title", locale),
        message=say(
            "attachments.message",
            locale,
            count=len(withheld),
            sent=sent,
            names=names,
            more=more,
            size=human_size(budget),
        ),
    )


def quoted(name: str) -> str:
    """A file name as inline code (its own backticks replaced), cut at 80 characters."""
    return "`" + name[:80].replace("`", "'") + "`"


def budget_notice(meter: Meter, spent: int | None = None, locale: str = "en") -> NoticeEvent | None:
    """The notice once today's tokens (`spent`, else the meter's estimate) reach NEARLY_SPENT
    of the daily budget; None without a budget or below that."""
    budget = meter.daily_budget
    spent = meter.tokens_before + meter.tokens if spent is None else spent
    if not budget or spent < budget * NEARLY_SPENT:
        return None
    if spent >= budget:
        return NoticeEvent(
            level="danger",
            title=say("budget.spent.title", locale),
            message=say("budget.spent", locale, budget=budget),
        )
    return NoticeEvent(
        level="warning",
        title=say("budget.near.title", locale),
        message=say(
            "budget.near", locale, percent=spent * 100 // budget, budget=budget, spent=spent
        ),
    )
