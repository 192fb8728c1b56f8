"""`POST /chatkit` (parse, check, take the turn under the user's limits, hand the request to
the ChatKit server) and `GET /health`. Errors are mapped in errors.py."""

from __future__ import annotations

from typing import Annotated

from chatkit.server import StreamingResult
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..chat.server import ChatServer
from ..context import RequestContext, get_request_context
from ..ops.gc_tuning import count_request
from ..ops.limits import check_transcription, run_shielded, start_turn
from ..settings import Settings
from ..store import PostgresStore
from .checks import check_options, check_targets
from .requests import check_sizes, parse_request, request_metadata
from .streaming import TurnStream, guard_stream

router = APIRouter()


@router.post("/chatkit", response_model=None)
async def chatkit_endpoint(
    request: Request, context: Annotated[RequestContext, Depends(get_request_context)]
) -> Response:
    """The ChatKit protocol: SSE for streaming requests, JSON otherwise."""
    count_request()
    settings: Settings = request.app.state.settings
    server: ChatServer = request.app.state.server
    parsed = await parse_request(request, settings)
    check_sizes(parsed, settings)
    context.metadata = request_metadata(parsed)
    check_options(parsed, settings)
    await check_targets(parsed, server.store, context)
    await check_transcription(parsed, server.store, context, settings)
    runs_model = context.checked_action is not None and context.checked_action[0].runs_model
    turn = await start_turn(parsed, server.store, context, settings, runs_model)
    try:
        result = await server.process_request(parsed, context)
    except BaseException:
        if turn is not None:
            await run_shielded(turn.finish())
        raise
    if isinstance(result, StreamingResult):
        return TurnStream(guard_stream(result), turn)
    if turn is not None:  # a synchronous action: its model calls, if any, are recorded now
        await run_shielded(turn.finish())
    return Response(content=result.json, media_type="application/json")


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    store: PostgresStore = request.app.state.store
    if await store.ping():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
