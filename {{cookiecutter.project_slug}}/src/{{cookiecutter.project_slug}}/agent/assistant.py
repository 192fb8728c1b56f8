"""The agent: its instructions, its model and its tools (TOOLS); the tools named in
CLIENT_TOOLS run in the browser, and the agent stops at them; TOOL_MENU is the composer's tool
menu (picking an entry makes the model call that tool)."""

from __future__ import annotations

from typing import Any

from agents import Agent, InputGuardrail, Model, OutputGuardrail, StopAtTools, Tool

from ..settings import Settings
from .composer import ToolOption
from .hosted import agent_model_settings, hosted_menu, hosted_tools
from .services import AppContext
{%- if cookiecutter.examples %}
from .tools import compare_times, count_down, get_time, switch_theme

TOOLS: list[Tool] = [get_time, count_down, switch_theme, compare_times]
"""Every tool the model may call (examples in tools.py)."""

CLIENT_TOOLS: frozenset[str] = frozenset({"switch_theme"})
"""The tools, by name, that the browser runs: the agent stops at them."""

TOOL_MENU: list[ToolOption] = [
    ToolOption("get_time", "Check the time", icon="clock", placeholder="Which time zone?"),
    ToolOption("switch_theme", "Switch theme", icon="settings-slider", short_label="Theme"),
]
"""The composer's tool menu, in order (GET /chatkit/options serves it)."""
{%- else %}

TOOLS: list[Tool] = []
"""Every tool the model may call."""

CLIENT_TOOLS: frozenset[str] = frozenset()
"""The tools, by name, that the browser runs: the agent stops at them."""

TOOL_MENU: list[ToolOption] = []
"""The composer's tool menu, in order (GET /chatkit/options serves it)."""
{%- endif %}

GUARDRAILS: list[InputGuardrail[Any] | OutputGuardrail[Any]] = []
"""Checks that can stop a turn (guardrails.py), e.g. `[no_secrets, no_secrets_in_answers]`."""


def tool_choices(settings: Settings | None = None) -> frozenset[str]:
    """The ids `tool_choice` may name: tools, menu entries, hosted tools the settings turn on."""
    hosted = {option.id for option in hosted_menu(settings)} if settings is not None else set()
    return frozenset(tool.name for tool in TOOLS) | {option.id for option in TOOL_MENU} | hosted


def tool_menu(settings: Settings) -> list[ToolOption]:
    """The composer's menu as served: TOOL_MENU, then the hosted tools that are on."""
    return [*TOOL_MENU, *hosted_menu(settings)]


def build_agent(
    model: Model, settings: Settings, tool_choice: str | None = None
) -> Agent[AppContext]:
    """The agent for one turn (cheap: tool schemas are made at import); a `tool_choice` that
    names a tool makes the model call it first (once: the SDK resets it after a tool ran)."""
    stop_at_client_tools = StopAtTools(stop_at_tool_names=sorted(CLIENT_TOOLS))
    hosted = hosted_tools(settings)
    callable_tools = {tool.name for tool in TOOLS} | {tool.name for tool in hosted}
    forced = tool_choice if tool_choice in callable_tools else None
    return Agent[AppContext](
        name="assistant",
        instructions=settings.instructions,
        model=model,
        model_settings=agent_model_settings(settings, forced),
        tools=[*TOOLS, *hosted] if hosted else TOOLS,
        tool_use_behavior=stop_at_client_tools if CLIENT_TOOLS else "run_llm_again",
        input_guardrails=[g for g in GUARDRAILS if isinstance(g, InputGuardrail)],
        output_guardrails=[g for g in GUARDRAILS if isinstance(g, OutputGuardrail)],
    )
