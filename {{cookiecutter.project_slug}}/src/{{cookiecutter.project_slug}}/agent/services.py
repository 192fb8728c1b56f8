"""What a tool reaches through `ctx.context`: the chat, the request and the app's services.

`AppContext` is ChatKit's AgentContext (stream progress and widgets, the thread, the store)
plus `services`, the app-wide clients a tool may use, built once in main.py: add yours to
`Services`. `ctx.context.request_context` is the request: its user, locale and app_context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from agents import RunContextWrapper
from chatkit.agents import AgentContext
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


ToolContext = RunContextWrapper[AppContext]
"""The first argument of a tool: `ctx.context` is the AppContext."""
