"""What the model reads when one of its tool calls fails: a short error it can act on (call
again with better arguments), never a traceback; one WARNING line in the log.

`tool_error_message` is the run's `tool_error_formatter` (respond.py): it answers for every
function tool that keeps the Agents SDK's default failure handling. `usable_arguments` guards
the model's arguments before the SDK reads them: JSON nested too deeply would fail the whole
turn there, so it becomes a small object naming the problem, which the tool then refuses.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pydantic_core
from agents import RunContextWrapper, ToolErrorFormatterArgs
from agents.exceptions import ModelBehaviorError

logger = logging.getLogger(__name__)

UNUSABLE = "__unusable_arguments__"
"""The key of the object that stands in for arguments the SDK could not read."""


def argument_problem(arguments: str) -> str | None:
    """Why a tool call's arguments (the model's JSON text) cannot be used, or None.

    pydantic-core's parser stops at 200 levels (the SDK's `json` would recurse until it fails).
    """
    try:
        value = pydantic_core.from_json(arguments or "{}")
    except ValueError as exc:
        return "they are nested too deeply" if "recursion" in str(exc) else "they are not JSON"
    if not isinstance(value, dict):
        return "they are not a JSON object"
    marked = value.get(UNUSABLE)
    return marked if isinstance(marked, str) else None


def usable_arguments(arguments: str) -> str:
    """`arguments`, unless they nest too deeply for the SDK: then `{UNUSABLE: why}`."""
    problem = argument_problem(arguments)
    if problem == "they are nested too deeply":
        return json.dumps({UNUSABLE: problem})
    return arguments


def tool_error_message(args: ToolErrorFormatterArgs[Any]) -> str | None:
    """The tool output the model gets for a failed call (None: the SDK's own message)."""
    if args.kind != "tool_exception":
        return None
    name, error = args.tool_name, args.error
    context: RunContextWrapper[Any] = args.run_context
    problem = argument_problem(str(getattr(context, "tool_arguments", "") or ""))
    if problem is None and isinstance(error, ModelBehaviorError):
        problem = "they do not match its parameters"
    if problem is not None:
        logger.warning("tool %s: the model's arguments cannot be used (%s)", name, problem)
        return (
            f"Error: the arguments for {name} could not be used: {problem}. "
            f"Call {name} again with one JSON object that matches its parameters."
        )
    logger.error("tool %s failed", name, exc_info=error)
    return f"Error: {name} failed ({type(error).__name__}). Try again, or answer without it."
