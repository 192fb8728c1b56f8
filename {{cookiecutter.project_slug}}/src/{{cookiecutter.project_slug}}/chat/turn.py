"""The turn: one ChatKit request from the endpoint's checks to its last event, as one object
(the request, the checked action, the meter, the lease, the sources cited) that the endpoint
creates and hands to the ChatKit server on the context (`TurnContext`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatkit.types import ChatKitReq

from ..agent.actions import CheckedAction
from ..agent.sources import Source
from ..context import RequestContext
from ..ops.limits import Lease
from ..ops.usage import Meter


@dataclass(slots=True)
class Turn:
    """One request's state while it runs."""

    request: ChatKitReq | None = None
    """None for a turn the ChatKit server started on its own (a context without one)."""
    action: CheckedAction | None = None
    """A widget action as the endpoint checked it (threads.custom_action and sync_custom_action)."""
    meter: Meter = field(default_factory=Meter)
    lease: Lease | None = None
    """Its hold on the user's limits, renewed while it streams, released when it ends."""
    cited: list[Source] = field(default_factory=list)
    """Sources tools cited, not yet attached to an answer (agent/sources.py)."""


@dataclass(slots=True)
class TurnContext(RequestContext):
    """The request context the ChatKit server gets: the SDK passes it through unchanged to
    `respond` and `action`, so the turn rides on it (the store sees a RequestContext)."""

    turn: Turn | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, context: RequestContext, turn: Turn) -> TurnContext:
        return cls(
            request=context.request,
            user=context.user,
            cache=context.cache,  # the rows the checks loaded serve the turn too
            app_context=context.app_context,
            locale=context.locale,
            turn=turn,
        )


def turn_of(context: RequestContext) -> Turn | None:
    """The turn riding on `context` (None: a context the endpoint did not make)."""
    return context.turn if isinstance(context, TurnContext) else None
