"""`POST /chatkit` (parse, check, hand the turn to the ChatKit server, stream its answer with
failures as error events and the lease released however it ends) and `GET /health`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Annotated

from chatkit.errors import ErrorCode
from chatkit.server import NonStreamingResult, StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ErrorEvent, is_streaming_req
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from ..chat.server import ChatServer
from ..chat.turn import Turn, TurnContext
from ..context import RequestContext, get_request_context
from ..ops.gc_tuning import count_request
from ..ops.limits import run_shielded
from ..settings import Settings
from ..store.health import is_outage
from ..store.health_check import check_health
from .request_types import body_limit_for, request_type
from .requests import parse_request

router = APIRouter()

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ERROR_EVENT_START = b'data: {"type":"error"'  # how the SDK serializes an ErrorEvent


def sse_event(event: ErrorEvent) -> bytes:
    return b"data: " + event.model_dump_json().encode() + b"\n\n"


async def guard_stream(stream: StreamingResult) -> AsyncGenerator[bytes, None]:
    """The SDK's events, a failure mid-stream as an error event; closing it closes the SDK's."""
    events = stream.json_events
    last = b""
    try:
        async for chunk in events:
            last = chunk
            yield chunk
    except NotFoundError as exc:
        # Its thread was deleted. Once the answer has begun the SDK has sent (and logged) an
        # error event; before that (the user's message not saved yet) nothing: say it once.
        if not last.startswith(ERROR_EVENT_START):
            logger.info("stream ended: its thread is gone (%s)", exc)
            yield sse_event(ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=False))
        return
    except Exception as exc:
        if is_outage(exc):  # the outage has its own log lines (store/health.py)
            logger.debug("stream failed: the database is unreachable")
        else:
            logger.exception("stream failed")
        yield sse_event(ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True))
    finally:
        await events.aclose()


class TurnStream(StreamingResponse):
    """A turn's SSE answer, made before `turn.result` is set; it renews and ends the lease."""

    def __init__(self, turn: Turn) -> None:
        super().__init__((), media_type="text/event-stream", headers=SSE_HEADERS)
        self.turn = turn
        self.events: AsyncGenerator[bytes, None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lease = self.turn.lease
        renewal = asyncio.create_task(lease.keep_leased()) if lease and lease.leased else None
        try:
            assert isinstance(self.turn.result, StreamingResult)  # process_turn's, by now
            self.body_iterator = self.events = guard_stream(self.turn.result)
            await super().__call__(scope, receive, send)
        finally:
            if renewal is not None:
                renewal.cancel()  # a renewal that still lands finds no lease once it is released
            await run_shielded(self._end())

    async def _end(self) -> None:
        if self.events is not None:
            await self.events.aclose()  # an interrupted stream counts its model usage here
        if self.turn.lease is not None:
            await self.turn.lease.finish()


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
    if kind.tags is not None:
        kind.tags(parsed, settings)  # tags first: each may cost the model a block
    if kind.sizes is not None:
        kind.sizes(parsed, settings)
    if kind.options is not None:
        kind.options(parsed, settings)
    turn = Turn(parsed)
    if kind.targets is not None:
        turn.action = await kind.targets(parsed, server.store, context)
    limits = kind.lease_limits(settings, parsed, turn.action)
    bucket = kind.rate(settings) if kind.rate is not None and limits is None else None
    stream = TurnStream(turn) if is_streaming_req(parsed) else None
    try:
        await server.process_turn(TurnContext.of(context, turn), limits, bucket)
    except BaseException:
        if turn.lease is not None:
            await run_shielded(turn.lease.finish())
        raise
    if stream is not None:
        return stream
    if turn.lease is not None:  # a synchronous action: its model calls, if any, are recorded now
        await run_shielded(turn.lease.finish())
    assert isinstance(turn.result, NonStreamingResult)
    return Response(content=turn.result.json, media_type="application/json")


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database answers, is this app's and migrated; else 503 naming what failed."""
    problem = await check_health(request.app.state.store)
    if problem is None:
        return JSONResponse({"status": "ok", "database": "ok"})
    body = {"status": "unavailable", "database": problem.what, "detail": problem.detail}
    return JSONResponse(body, 503)
