"""The agent: its instructions, its model and its tools (TOOLS); the tools named in
CLIENT_TOOLS run in the browser, and the agent stops at them."""

from __future__ import annotations

from typing import Any

from agents import Agent, InputGuardrail, Model, OutputGuardrail, StopAtTools, Tool
from chatkit.agents import AgentContext

from ..context import RequestContext
from ..settings import Settings
from .hosted import agent_model_settings, hosted_tools
{%- if cookiecutter.examples %}
from .tools import compare_times, count_down, get_time, switch_theme

TOOLS: list[Tool] = [get_time, count_down, switch_theme, compare_times]
"""Every tool the model may call (examples in tools.py)."""

CLIENT_TOOLS: frozenset[str] = frozenset({"switch_theme"})
"""The tools, by name, that the browser runs: the agent stops at them."""
{%- else %}

TOOLS: list[Tool] = []
"""Every tool the model may call."""

CLIENT_TOOLS: frozenset[str] = frozenset()
"""The tools, by name, that the browser runs: the agent stops at them."""
{%- endif %}

GUARDRAILS: list[InputGuardrail[Any] | OutputGuardrail[Any]] = []
"""Checks that can stop a turn (guardrails.py), e.g. `[no_secrets, no_secrets_in_answers]`."""


def build_agent(model: Model, settings: Settings) -> Agent[AgentContext[RequestContext]]:
    """The agent for one turn (cheap to build: each tool's schema is made once, at import)."""
    stop_at_client_tools = StopAtTools(stop_at_tool_names=sorted(CLIENT_TOOLS))
    hosted = hosted_tools(settings)
    return Agent[AgentContext[RequestContext]](
        name="assistant",
        instructions=settings.instructions,
        model=model,
        model_settings=agent_model_settings(settings),
        tools=[*TOOLS, *hosted] if hosted else TOOLS,
        tool_use_behavior=stop_at_client_tools if CLIENT_TOOLS else "run_llm_again",
        input_guardrails=[g for g in GUARDRAILS if isinstance(g, InputGuardrail)],
        output_guardrails=[g for g in GUARDRAILS if isinstance(g, OutputGuardrail)],
    )
