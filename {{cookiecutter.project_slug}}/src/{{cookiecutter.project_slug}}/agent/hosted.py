"""OpenAI's hosted tools (WEB_SEARCH, FILE_SEARCH_VECTOR_STORE_IDS, IMAGE_GENERATION) and the
reasoning options (REASONING_EFFORT, REASONING_SUMMARY), as the settings ask for them; Chat
Completions sends the effort only."""

from __future__ import annotations

import functools

from agents import (
    FileSearchTool,
    ImageGenerationTool,
    ModelSettings,
    Tool,
    WebSearchTool,
)
from openai.types.shared import Reasoning

from ..settings import Settings
from .composer import ToolOption

PARTIAL_IMAGES = 2
"""Partial images streamed while an image is generated (0-3; each is a few hundred KB)."""


@functools.cache
def _hosted_tools(
    web_search: bool, vector_store_ids: tuple[str, ...], image_generation: bool
) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    if web_search:
        tools.append(WebSearchTool())
    if vector_store_ids:
        tools.append(FileSearchTool(vector_store_ids=list(vector_store_ids)))
    if image_generation:
        tools.append(
            ImageGenerationTool(
                tool_config={"type": "image_generation", "partial_images": PARTIAL_IMAGES}
            )
        )
    return tuple(tools)


def hosted_tools(settings: Settings) -> tuple[Tool, ...]:
    """The hosted tools the settings turn on (made once per combination)."""
    return _hosted_tools(
        settings.web_search,
        tuple(settings.file_search_vector_store_ids),
        settings.image_generation,
    )


HOSTED_MENU = {
    "web_search": ToolOption("web_search", "Search the web", icon="globe", short_label="Search"),
    "file_search": ToolOption("file_search", "Search the files", icon="document"),
    "image_generation": ToolOption(
        "image_generation", "Create an image", icon="images", short_label="Image"
    ),
}  # picking one forces it (`tool_choice`)


def hosted_menu(settings: Settings) -> list[ToolOption]:
    """The menu entries of the hosted tools the settings turn on, in HOSTED_MENU's order."""
    on = {tool.name for tool in hosted_tools(settings)}
    return [option for name, option in HOSTED_MENU.items() if name in on]


@functools.cache
def _model_settings(
    effort: str | None, summary: str | None, tool_choice: str | None
) -> ModelSettings:
    if effort is None and summary is None:
        return ModelSettings(tool_choice=tool_choice)
    if effort is not None and summary is None:
        summary = "auto"
    wanted = {"effort": effort, "summary": summary}
    reasoning = Reasoning.model_validate({k: v for k, v in wanted.items() if v is not None})
    return ModelSettings(reasoning=reasoning, tool_choice=tool_choice)


def agent_model_settings(settings: Settings, tool_choice: str | None = None) -> ModelSettings:
    """The agent's model settings: `reasoning` when REASONING_EFFORT or REASONING_SUMMARY is
    set; `tool_choice`, a tool the model must call first."""
    return _model_settings(settings.reasoning_effort, settings.reasoning_summary, tool_choice)
