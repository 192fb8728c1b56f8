"""Guardrails: checks that stop a turn, on when listed in agent.GUARDRAILS. The chat shows their
`output_info` text with no retry, and what they stopped is removed from the thread (README,
"Guardrails"). The examples keep secret keys away from the model."""

from __future__ import annotations

import re
from typing import Any

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    RunContextWrapper,
    TResponseInputItem,
    input_guardrail,
    output_guardrail,
)
from chatkit.errors import CustomStreamError

from .catalogue import say

SECRET = re.compile(
    r"\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI-style API keys
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{36,}"  # GitHub tokens
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
TRIPPED = (InputGuardrailTripwireTriggered, OutputGuardrailTripwireTriggered)


def turn_user_text(input: str | list[TResponseInputItem]) -> str:
    """The user-role items at the end of the input: typed text, then the quoted text and
    @-mention context the SDK sends as items of their own."""
    if isinstance(input, str):
        return input
    texts: list[str] = []
    for item in reversed(input):
        if not (isinstance(item, dict) and item.get("role") == "user"):
            break
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            parts = content if isinstance(content, list) else []
            texts.extend(str(p.get("text", "")) for p in parts if isinstance(p, dict))
    return "\n".join(reversed(texts))


@input_guardrail(name="no_secrets", run_in_parallel=False)
async def no_secrets(
    ctx: RunContextWrapper[Any], agent: Agent[Any], input: str | list[TResponseInputItem]
) -> GuardrailFunctionOutput:
    """Keep a message (text, quote, tags) that carries a secret key from the model."""
    found = SECRET.search(turn_user_text(input)) is not None
    message = say("secrets.in_message", locale_of(ctx))
    return GuardrailFunctionOutput(output_info=message if found else None, tripwire_triggered=found)


@output_guardrail(name="no_secrets_in_answers")
async def no_secrets_in_answers(
    ctx: RunContextWrapper[Any], agent: Agent[Any], output: Any
) -> GuardrailFunctionOutput:
    """Remove an answer that carries a secret key (it has streamed by then)."""
    found = SECRET.search(str(output)) is not None
    message = say("secrets.in_answer", locale_of(ctx))
    return GuardrailFunctionOutput(output_info=message if found else None, tripwire_triggered=found)


def locale_of(ctx: RunContextWrapper[Any]) -> str:
    request = getattr(ctx.context, "request_context", None)
    return str(getattr(request, "locale", "en"))


def tripwire_error(
    exc: InputGuardrailTripwireTriggered | OutputGuardrailTripwireTriggered, locale: str = "en"
) -> CustomStreamError:
    """What the chat shows when a guardrail trips: its `output_info` text, never a retry (the
    same message would trip it again)."""
    info = exc.guardrail_result.output.output_info
    if isinstance(info, str) and info.strip():
        return CustomStreamError(info, allow_retry=False)
    refused = isinstance(exc, InputGuardrailTripwireTriggered)
    return CustomStreamError(
        say("guardrail.refused" if refused else "guardrail.removed", locale), allow_retry=False
    )
