"""The turn: one ChatKit request as one object (request, checked action, meter, lease, cited
sources) the endpoint makes and hands to the ChatKit server on the context (`TurnContext`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chatkit.server import NonStreamingResult, StreamingResult
from chatkit.types import ChatKitReq

from ..agent.actions import CheckedAction
from ..agent.sources import Source
from ..context import RequestContext
from ..ops.limits import Lease
from ..ops.usage import Meter


@dataclass(slots=True)
class Turn:
    """One request's state while it runs."""

    request: ChatKitReq | None = None  # None: the SDK's own `process` (tests) made the turn
    action: CheckedAction | None = None
    meter: Meter = field(default_factory=Meter)
    lease: Lease | None = None
    cited: list[Source] = field(default_factory=list)
    result: StreamingResult | NonStreamingResult | None = None  # what the ChatKit server made


@dataclass(slots=True)
class TurnContext(RequestContext):
    """The context the SDK hands unchanged to `respond` and `action`: the turn rides on it."""

    turn: Turn | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, context: RequestContext, turn: Turn) -> TurnContext:
        return cls(
            request=context.request,
            user=context.user,
            cache=context.cache,  # the rows the checks loaded serve the turn too
            app_context=context.app_context,
            locale=context.locale,
            metadata=turn.request.metadata if turn.request is not None else {},
            turn=turn,
        )


def turn_of(context: RequestContext) -> Turn | None:
    """The turn riding on `context` (None: a context the endpoint did not make)."""
    return context.turn if isinstance(context, TurnContext) else None
