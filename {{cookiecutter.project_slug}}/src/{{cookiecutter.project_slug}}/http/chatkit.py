"""`POST /chatkit` (parse, check, take the turn under the user's limits, hand the turn to the
ChatKit server) and `GET /health`. Errors are mapped in errors.py."""

from __future__ import annotations

from typing import Annotated

from chatkit.server import StreamingResult
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..chat.server import ChatServer
from ..chat.turn import Turn, TurnContext
from ..context import RequestContext, get_request_context
from ..ops.gc_tuning import count_request
from ..ops.limits import run_shielded, start_lease, take_token
from ..settings import Settings
from ..store import PostgresStore
from .request_types import body_limit_for, request_type
from .requests import parse_request
from .streaming import TurnStream, guard_stream

router = APIRouter()


@router.post("/chatkit", response_model=None)
async def chatkit_endpoint(
    request: Request, context: Annotated[RequestContext, Depends(get_request_context)]
) -> Response:
    """The ChatKit protocol: SSE for streaming requests, JSON otherwise. What each request type
    needs before the server runs it is its row in request_types.py."""
    count_request()
    settings: Settings = request.app.state.settings
    server: ChatServer = request.app.state.server
    parsed = await parse_request(request, settings, body_limit_for(settings))
    kind = request_type(parsed.type)
    if kind.sizes is not None:
        kind.sizes(parsed, settings)
    if kind.options is not None:
        kind.options(parsed, settings)
    turn = Turn(parsed)
    if kind.targets is not None:
        turn.action = await kind.targets(parsed, server.store, context)
    if (limits := kind.lease_limits(settings, turn.action)) is not None:
        turn.lease = await start_lease(limits, server.store, context.user.id, turn.meter)
    elif kind.rate is not None:
        await take_token(server.store, context.user.id, kind.rate(settings))
    try:
        result = await server.process_request(parsed, TurnContext.of(context, turn))
    except BaseException:
        if turn.lease is not None:
            await run_shielded(turn.lease.finish())
        raise
    if isinstance(result, StreamingResult):
        return TurnStream(guard_stream(result), turn.lease)
    if turn.lease is not None:  # a synchronous action: its model calls, if any, are recorded now
        await run_shielded(turn.lease.finish())
    return Response(content=result.json, media_type="application/json")


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    store: PostgresStore = request.app.state.store
    if await store.ping():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
