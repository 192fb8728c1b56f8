"""A turn's SSE answer: the SDK's events passed through, failures as error events, and the
turn finished (lease released, usage recorded) however the stream ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

from chatkit.errors import ErrorCode
from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ErrorEvent
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..ops.limits import Turn, run_shielded
from ..store.health import is_outage

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def guard_stream(stream: StreamingResult) -> AsyncGenerator[bytes, None]:
    """The SDK's events; a failure mid-stream becomes an error event, not a cut. Closing this
    closes the SDK's generator too, so its cleanup runs now."""
    events = stream.json_events
    try:
        async for chunk in events:
            yield chunk
    except NotFoundError:
        # its thread was deleted: the SDK sent an error event, its log line is INFO (compat)
        return
    except Exception as exc:
        if is_outage(exc):  # the outage has its own log lines (store/health.py)
            logger.debug("stream failed: the database is unreachable")
        else:
            logger.exception("stream failed")
        event = ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True)
        yield b"data: " + event.model_dump_json().encode() + b"\n\n"
    finally:
        await events.aclose()


class TurnStream(StreamingResponse):
    """A turn's SSE answer, its lease renewed while it streams; however it ends, the turn is
    finished (lease released, usage recorded) once the response has ended (the client never
    waits for that statement)."""

    def __init__(self, events: AsyncGenerator[bytes, None], turn: Turn | None) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self.events = events
        self.turn = turn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        turn = self.turn
        renewal = asyncio.create_task(turn.keep_leased()) if turn and turn.leased else None
        try:
            await super().__call__(scope, receive, send)
        finally:
            if renewal is not None:
                renewal.cancel()  # a renewal that still lands finds no lease once it is released
            await run_shielded(self._end())

    async def _end(self) -> None:
        await self.events.aclose()  # an interrupted stream counts its model usage here
        if self.turn is not None:
            await self.turn.finish()
