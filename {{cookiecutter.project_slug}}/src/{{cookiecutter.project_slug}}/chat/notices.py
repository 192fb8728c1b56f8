"""Notices: what the service tells the user beside an answer (a `NoticeEvent`, shown by the
client, never stored): attachments the answer could not read, a daily budget nearly spent."""

from __future__ import annotations

from collections.abc import Sequence

from chatkit.types import Attachment, NoticeEvent

from ..ops.usage import Meter
from .notes import human_size

NEARLY_SPENT = 0.9
"""The share of USER_DAILY_TOKENS from which each answer warns."""
MAX_NAMES = 3


def attachments_notice(withheld: Sequence[Attachment], sent: int, budget: int) -> NoticeEvent:
    """The notice for a message whose attachments did not all fit in the model request
    (MAX_MODEL_INPUT_BYTES): which ones the answer did not see."""
    names = ", ".join(quoted(a.name) for a in withheld[:MAX_NAMES])
    more = f" and {len(withheld) - MAX_NAMES} more" if len(withheld) > MAX_NAMES else ""
    return NoticeEvent(
        level="warning",
        title="Some attachments were not read",
        message=(
            f"The answer did not see {len(withheld)} of the {sent} attachments of your message "
            f"({names}{more}): one request to the model carries at most {human_size(budget)}. "
            "Send the others in another message."
        ),
    )


def quoted(name: str) -> str:
    """A file name as inline code (its own backticks replaced), cut at 80 characters."""
    return "`" + name[:80].replace("`", "'") + "`"


def budget_notice(meter: Meter, spent: int | None = None) -> NoticeEvent | None:
    """The notice once the user's tokens today (`spent`, this turn's included; else the
    meter's estimate) reach NEARLY_SPENT of their daily budget; None when there is no budget
    or it is not nearly spent."""
    budget = meter.daily_budget
    spent = meter.tokens_before + meter.tokens if spent is None else spent
    if not budget or spent < budget * NEARLY_SPENT:
        return None
    if spent >= budget:
        return NoticeEvent(
            level="danger",
            title="Daily limit reached",
            message=(
                f"You have used today's {budget:,} tokens. New messages are refused until "
                "midnight UTC."
            ),
        )
    return NoticeEvent(
        level="warning",
        title="Daily limit nearly reached",
        message=(
            f"You have used {spent * 100 // budget}% of today's {budget:,} tokens "
            f"({spent:,}). It renews at midnight UTC."
        ),
    )
