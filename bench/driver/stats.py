"""One turn as the client saw it, and the figures a batch of turns gives (percentiles, rates)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Turn:
    """One user message and the streamed answer, as the client saw it."""

    ok: bool
    started: float
    ttft: float | None = None
    total: float = 0.0
    error: str | None = None
    thread_id: str | None = None
    text: str = ""
    shown: list[str] = field(default_factory=list)
    """The types of the items done in the stream, and `progress_update` for each update."""


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank on the sorted values); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> float:
    """Seconds -> milliseconds, rounded for the report."""
    return round(seconds * 1000, 2)


def ratio(ours: float | None, base: float | None) -> float | None:
    """ours / baseline (None when either is missing or the baseline is zero)."""
    if ours is None or base is None or base == 0 or ours != ours or base != base:
        return None
    return round(ours / base, 3)


def safe_ratio(top: float, bottom: float) -> float | None:
    return round(top / bottom, 2) if bottom > 0 else None


def per_turn(seconds: float, turns: int) -> float | None:
    """Milliseconds of server CPU per completed turn."""
    return round(seconds * 1000 / turns, 2) if turns else None


def error_kinds(turns: list[Turn]) -> dict[str, int]:
    """How many failed turns failed each way."""
    kinds: dict[str, int] = {}
    for turn in turns:
        if not turn.ok:
            kinds[str(turn.error)] = kinds.get(str(turn.error), 0) + 1
    return kinds


def summarize(turns: list[Turn], wall: float, stragglers: int = 0) -> dict[str, Any]:
    """Counts, rates and latency percentiles of a batch of turns."""
    ok = [t for t in turns if t.ok]
    ttfts = [t.ttft for t in ok if t.ttft is not None]
    totals = [t.total for t in ok]
    return {
        "turns": len(ok),
        "errors": len(turns) - len(ok) + stragglers,
        "error_kinds": error_kinds(turns),
        "seconds": round(wall, 2),
        "turns_per_s": round(len(ok) / wall, 2) if wall else 0.0,
        "ttft_p50_ms": ms(percentile(ttfts, 50)),
        "ttft_p99_ms": ms(percentile(ttfts, 99)),
        "total_p50_ms": ms(percentile(totals, 50)),
        "total_p99_ms": ms(percentile(totals, 99)),
    }


def below(value: float | None, limit: float | None, *, inclusive: bool = False) -> bool | None:
    """value < limit (<= when inclusive); None when either is unknown."""
    if value is None or limit is None or value != value or limit != limit:
        return None
    return value <= limit if inclusive else value < limit
