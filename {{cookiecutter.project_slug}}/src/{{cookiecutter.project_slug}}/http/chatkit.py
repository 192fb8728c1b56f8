"""`POST /chatkit` (the ChatKit protocol) and `GET /health`: parse, check, take the turn under
the user's limits, then hand the parsed request to the ChatKit server."""

from __future__ import annotations

import logging
from typing import Annotated

from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from ..chat.server import ChatServer
from ..context import RequestContext, get_request_context
from ..errors import AppError, error_response
from ..ops.gc_tuning import count_request
from ..ops.limits import Turn, run_shielded, start_turn
from ..settings import Settings
from ..store.attachments import AttachmentTooLarge
from ..store.postgres import PostgresStore
from .checks import check_options, check_targets
from .requests import check_sizes, parse_request
from .streaming import TurnStream, guard_stream

logger = logging.getLogger(__name__)

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
    turn: Turn | None = None
    try:
        check_sizes(parsed, settings)
        check_options(parsed, settings)
        await check_targets(parsed, server.store, context)
        turn = await start_turn(parsed, server.store, context, settings)
        try:
            result = await server.process_request(parsed, context)
        except BaseException:
            if turn is not None:
                await run_shielded(turn.finish())
            raise
    except NotFoundError:
        return error_response(404, "not_found", "no such thread, item or attachment")
    except AttachmentTooLarge as exc:
        return error_response(413, "too_large", str(exc))
    except AppError as exc:
        return exc.response()
    except (ValueError, NotImplementedError, RuntimeError) as exc:
        # The SDK raises these for requests this server cannot honour (e.g. an item of
        # the wrong type, or attachments without an attachment store).
        logger.info("rejected %s: %s", parsed.type, type(exc).__name__)
        return error_response(400, "unsupported", str(exc)[:300])
    if isinstance(result, StreamingResult):
        return TurnStream(guard_stream(result), turn)
    return Response(content=result.json, media_type="application/json")


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, 503 when it does not."""
    store: PostgresStore = request.app.state.store
    if await store.ping():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
