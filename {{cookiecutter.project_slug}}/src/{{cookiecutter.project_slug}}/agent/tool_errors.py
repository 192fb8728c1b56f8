"""What the model and the logs get when a tool call fails: a short error the model can act on,
never the arguments' values. `tool_error_formatter` is the run's hook; `usable_arguments` keeps
JSON nested too deeply from failing the whole turn."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import pydantic_core
from agents import FunctionTool, ModelBehaviorError, ToolErrorFormatterArgs
from agents.function_schema import function_schema
from pydantic import BaseModel, ValidationError

from . import assistant

logger = logging.getLogger(__name__)

UNUSABLE = "__unusable_arguments__"  # the key of the object standing in for unusable arguments
TOO_DEEP = "nested too deeply"


def structural_problem(arguments: str) -> tuple[str | None, Any]:
    """Why the model's JSON text cannot be a tool's arguments (or None), and the parsed value.
    pydantic-core's parser stops at 200 levels (the SDK's `json` would recurse until it fails)."""
    try:
        value = pydantic_core.from_json(arguments or "{}")
    except ValueError as exc:
        return (TOO_DEEP if "recursion" in str(exc) else "not valid JSON"), None
    if not isinstance(value, dict):
        return "not a JSON object", None
    marked = value.get(UNUSABLE)
    return (marked if isinstance(marked, str) else None), value


def usable_arguments(arguments: str) -> str:
    """`arguments`, unless they nest too deeply for the SDK: then `{UNUSABLE: why}`."""
    if structural_problem(arguments)[0] == TOO_DEEP:
        return json.dumps({UNUSABLE: TOO_DEEP})
    return arguments


def tool_error_formatter(args: ToolErrorFormatterArgs[Any]) -> str | None:
    """The tool output the model gets for a failed call (None: the SDK's own message)."""
    if args.kind != "tool_exception" or args.error is None:
        return None
    name, error = args.tool_name, args.error
    arguments = str(getattr(args.run_context, "tool_arguments", "") or "")
    problem, parsed = structural_problem(arguments)
    if problem is None and isinstance(error, ModelBehaviorError):  # the SDK: unusable arguments
        problem = field_problems(name, parsed)
    if problem is not None:
        logger.warning("tool %s: arguments refused: %s", name, problem)
        return (
            f"Error: {name} was called with invalid arguments ({problem}). "
            "Call it again with one JSON object that matches its parameters."
        )
    logger.error("tool %s failed", name, exc_info=error)
    return f"Error: {name} failed ({type(error).__name__}). Try again, or answer without it."


def field_problems(tool_name: str, parsed: Any) -> str:
    """What is wrong with a call's arguments, by argument name, without their values."""
    function = next(
        (
            getattr(tool, "__wrapped__", None)  # the decorated function
            for tool in assistant.TOOLS
            if isinstance(tool, FunctionTool) and tool.name == tool_name
        ),
        None,
    )
    if function is not None and isinstance(parsed, dict):
        try:
            arguments_model(function).model_validate(parsed)
        except ValidationError as exc:
            return "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
    return "they do not match its parameters"


@functools.cache
def arguments_model(function: Callable[..., Any]) -> type[BaseModel]:
    """The pydantic model the SDK validates a function tool's arguments with."""
    return function_schema(function).params_pydantic_model
