"""What the model and the logs get when a tool call fails: the tool's name and the error, never
the arguments' values (they may hold what the user typed). Wired in as RunConfig's
`tool_error_formatter`."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from agents import FunctionTool, ModelBehaviorError, ToolErrorFormatterArgs
from agents.function_schema import function_schema
from pydantic import BaseModel, ValidationError

from .agent import TOOLS

logger = logging.getLogger(__name__)


def tool_error_formatter(args: ToolErrorFormatterArgs[Any]) -> str | None:
    """A WARNING and a readable tool output for arguments the tool refused; a WARNING (the
    exception's type only) and the SDK's own output for a tool that raised."""
    if args.kind != "tool_exception" or args.error is None:
        return None
    if isinstance(args.error, ModelBehaviorError):  # the SDK's word for unusable arguments
        problems = argument_problems(
            args.tool_name, getattr(args.run_context, "tool_arguments", "")
        )
        logger.warning("tool %s: arguments refused: %s", args.tool_name, problems)
        return (
            f"Error: {args.tool_name} was called with invalid arguments ({problems}). "
            "Call it again with arguments that match its parameters."
        )
    logger.warning("tool %s failed: %s", args.tool_name, type(args.error).__name__)
    return None


def argument_problems(tool_name: str, arguments: str | None) -> str:
    """What is wrong with a call's arguments, by argument name, without their values."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return "not valid JSON"
    if not isinstance(parsed, dict):
        return "not a JSON object"
    model = arguments_model(tool_name)
    if model is not None:
        try:
            model.model_validate(parsed)
        except ValidationError as exc:
            return "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
    return "they do not match its parameters"


@functools.cache
def arguments_model(tool_name: str) -> type[BaseModel] | None:
    """The pydantic model the SDK validates a function tool's arguments with."""
    for tool in TOOLS:
        if isinstance(tool, FunctionTool) and tool.name == tool_name:
            function = getattr(tool, "__wrapped__", None)  # the decorated function
            return function_schema(function).params_pydantic_model if function else None
    return None
