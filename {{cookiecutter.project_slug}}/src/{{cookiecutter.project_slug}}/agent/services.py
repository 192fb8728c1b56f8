"""What a tool reaches through `ctx.context`: ChatKit's AgentContext (the chat, the thread, the
request with its user, locale and app_context) plus `services`, the app's clients for tools,
built once in main.py: add yours to `Services`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from agents import RunContextWrapper
from chatkit.agents import AgentContext
from chatkit.types import EntitySource, FileSource, URLSource
from pydantic import Field, SkipValidation

from ..context import RequestContext
from ..settings import Settings


@dataclass(slots=True)
class Services:
    """The app's services for tools (a CRM client, a search index, ...): add fields here and
    build them in `main.create_app`."""

    settings: Settings


class AppContext(AgentContext[RequestContext]):
    """The agent context of every turn: ChatKit's, plus the app's services."""

    services: Annotated[Services, SkipValidation, Field(exclude=True)]
    cited: Annotated[
        list[URLSource | FileSource | EntitySource],
        SkipValidation,
        Field(default_factory=list, exclude=True),
    ]


ToolContext = RunContextWrapper[AppContext]
"""The first argument of a tool: `ctx.context` is the AppContext."""
