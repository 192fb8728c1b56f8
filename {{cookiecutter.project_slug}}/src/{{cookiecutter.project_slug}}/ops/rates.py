"""A kind of request's rate (a bucket per user) and the 429 answers of a refused request."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import AppError


@dataclass(frozen=True, slots=True)
class Bucket:
    """One kind of request's rate: `per_minute` (0: unlimited), `cost` per request."""

    kind: str
    per_minute: int
    cost: int = 1


class Used(NamedTuple):
    """The day's tokens: spent, held by running answers, this request's estimate."""

    spent: int
    reserved: float
    estimate: float


def refusal(
    bucket: Bucket,
    max_streams: int,
    budget: int,
    allowance: float,
    used: Used,
    soonest: float | None,
) -> AppError:
    """Why a lease was refused: the day's budget, the rate or the concurrent streams (429)."""
    spent, reserved, estimate = used
    if budget and spent >= budget:
        return too_many(
            f"daily token budget used ({spent:,} of {budget:,} tokens); it renews at midnight UTC",
            "daily_budget_exceeded",
            seconds_to_utc_midnight(),
        )
    until_a_lease_ends = math.ceil(soonest or 1)
    if budget and spent + reserved + estimate >= budget:
        held = f", about {round(reserved):,} more held by answers still running" if reserved else ""
        return too_many(
            f"daily token budget nearly used ({spent:,} of {budget:,} tokens{held}); this "
            f"message needs about {round(estimate):,}",
            "daily_budget_exceeded",
            until_a_lease_ends if reserved else seconds_to_utc_midnight(),
        )
    if bucket.per_minute and allowance < bucket.cost:
        return rate_limited(bucket, allowance)
    return too_many(
        f"too many answers streaming at once: at most {max_streams}",
        "too_many_streams",
        until_a_lease_ends,
    )


def rate_limited(bucket: Bucket, allowance: float) -> AppError:
    seconds = math.ceil((bucket.cost - allowance) * 60 / bucket.per_minute)
    message = f"too many {bucket.kind}: at most {bucket.per_minute} a minute"
    return too_many(message, "rate_limited", seconds)


def too_many(message: str, code: str, seconds: int) -> AppError:
    seconds = max(1, seconds)
    return AppError(
        message,
        status=429,
        code=code,
        headers={"Retry-After": str(seconds)},
        retry_after=seconds,
    )


def seconds_to_utc_midnight(now: float | None = None) -> int:
    """Whole seconds until the next UTC day begins."""
    now = time.time() if now is None else now
    return math.ceil(86400 - now % 86400)
