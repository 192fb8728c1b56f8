"""What the composer offers and a message may pick: models (MODELS) and the tool menu, served
by `GET /chatkit/options`; `check_inference_options` refuses other picks (400) before any
stream, and `picked_model` / `picked_tool` are what a turn then runs with."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from chatkit.types import InferenceOptions

from ..errors import AppError
from ..settings import Settings


@dataclass(frozen=True, slots=True)
class ToolOption:
    """One entry of the composer's tool menu (ChatKit.js `ToolOption`)."""

    id: str
    """A tool's name (the model must call it), or an id `build_agent` routes elsewhere."""
    label: str
    icon: str = "bolt"
    """A ChatKit icon name (`chatkit.icons.IconName`)."""
    short_label: str | None = None
    placeholder: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as ChatKit.js takes it."""
        entry: dict[str, Any] = {"id": self.id, "label": self.label, "icon": self.icon}
        if self.short_label:
            entry["shortLabel"] = self.short_label
        if self.placeholder:
            entry["placeholderOverride"] = self.placeholder
        return entry


def model_options(settings: Settings) -> list[dict[str, Any]]:
    """The model picker's entries (ChatKit.js `ModelOption`): OPENAI_MODEL is the default."""
    return [
        {"id": name, "label": name, "default": name == settings.openai_model}
        for name in settings.allowed_models
    ]


def check_inference_options(
    options: InferenceOptions, settings: Settings, tool_choices: Collection[str]
) -> None:
    """A model outside MODELS or a tool id that is no choice: AppError (400)."""
    if options.model is not None and options.model not in settings.allowed_models:
        raise AppError(
            f"model {options.model[:100]!r} is not offered (MODELS)", code="model_not_allowed"
        )
    if options.tool_choice is not None and options.tool_choice.id not in tool_choices:
        raise AppError(
            f"no tool {options.tool_choice.id[:100]!r} to choose", code="tool_not_allowed"
        )


def picked_model(options: InferenceOptions | None, settings: Settings) -> str:
    """The model that answers: the one picked if MODELS (still) has it, else OPENAI_MODEL."""
    if options is not None and options.model in settings.allowed_models:
        return options.model
    return settings.openai_model


def picked_tool(options: InferenceOptions | None, tool_choices: Collection[str]) -> str | None:
    """The tool-menu id picked, if it is (still) a choice."""
    choice = options.tool_choice.id if options is not None and options.tool_choice else None
    return choice if choice in tool_choices else None
