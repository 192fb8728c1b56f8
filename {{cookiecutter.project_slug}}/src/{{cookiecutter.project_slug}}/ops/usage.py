"""Model usage: each turn's model calls on a `Meter` (limits.py writes them when the stream
ends) and each transcription (`record_transcription`, not counted in the daily budget)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from agents import ModelResponse

from ..store.postgres import PostgresStore
from ..store.usage_rows import insert_transcription, record_so_far

logger = logging.getLogger(__name__)

Purpose = Literal["answer", "title", "transcription"]


@dataclass(frozen=True, slots=True)
class ModelCall:
    model: str
    purpose: Purpose
    input_tokens: int
    output_tokens: int


@dataclass(slots=True)
class Meter:
    thread_id: str | None = None
    calls: list[ModelCall] = field(default_factory=list)
    tokens_before: int = 0
    """The user's tokens today before this turn (read when the daily budget is checked)."""
    daily_budget: int = 0
    """USER_DAILY_TOKENS when this turn was checked against it, else 0."""
    turn_id: str | None = None  # the turn's key in `usage` (its lease id)

    @property
    def tokens(self) -> int:
        """The tokens of this turn's calls so far."""
        return sum(call.input_tokens + call.output_tokens for call in self.calls)

    def add(self, model: str, purpose: Purpose, input_tokens: int, output_tokens: int) -> None:
        self.calls.append(ModelCall(model, purpose, max(input_tokens, 0), max(output_tokens, 0)))

    def add_responses(self, model: str, responses: Iterable[ModelResponse]) -> None:
        """The calls of an Agents SDK run (`result.raw_responses`)."""
        for response in responses:
            self.add(model, "answer", response.usage.input_tokens, response.usage.output_tokens)


CHARS_PER_TOKEN = 4
"""Characters a model token holds, about (English text; JSON runs shorter, so a safe side)."""


async def tokens_today(store: PostgresStore, meter: Meter, user_id: str) -> int:
    """The user's tokens today, this turn's calls recorded first, so the budget notice is never
    a turn behind (docs/design_decisions.md); on a database error, the meter's estimate."""
    calls = list(meter.calls)
    estimate = meter.tokens_before + meter.tokens
    if meter.turn_id is None:
        return estimate
    params = {
        "turn": meter.turn_id,
        "user": user_id,
        "thread": meter.thread_id,
        "models": [c.model for c in calls],
        "purposes": [c.purpose for c in calls],
        "inputs": [c.input_tokens for c in calls],
        "outputs": [c.output_tokens for c in calls],
    }
    try:
        total = await record_so_far(store, params)
    except Exception as exc:
        logger.debug("could not read today's usage: %s", type(exc).__name__)
        return estimate
    return max(total, estimate)


@dataclass(frozen=True, slots=True)
class TranscriptionCall:
    """One dictation request to the provider: its model, the recording's size, the tokens."""

    model: str
    audio_bytes: int
    input_tokens: int = 0
    output_tokens: int = 0


async def record_transcription(store: PostgresStore, user_id: str, call: TranscriptionCall) -> None:
    """Write one `usage` row for a transcription; a failure is logged (the user keeps the text)."""
    params = {
        "id": uuid.uuid4().hex,
        "user": user_id,
        "model": call.model,
        "input": max(call.input_tokens, 0),
        "output": max(call.output_tokens, 0),
        "audio": call.audio_bytes,
    }
    try:
        await insert_transcription(store, params)
    except Exception:
        logger.exception("could not record a transcription's usage")
