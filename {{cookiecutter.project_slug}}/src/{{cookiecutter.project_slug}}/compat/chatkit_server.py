"""openai-chatkit and openai-agents: the server's request handlers, and names in their output."""

from __future__ import annotations

import logging
from typing import Any

from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ChatKitReq, is_streaming_req

__all__ = ["FAKE_RESPONSES_ID", "SDK_TASK_NOISE", "process_parsed", "quiet_deleted_threads"]


async def process_parsed(
    server: ChatKitServer[Any], request: ChatKitReq, context: Any
) -> StreamingResult | NonStreamingResult:
    """`server.process` for a parsed request (`process` builds a TypeAdapter per call)."""
    if is_streaming_req(request):
        return StreamingResult(server._process_streaming(request, context))
    return NonStreamingResult(await server._process_non_streaming(request, context))


# What asyncio logs about the SDK's internal queue task when a client disconnects.
SDK_TASK_NOISE = ("StopAsyncIteration", "_AsyncQueueIterator.__anext__")


SDK_STREAM_FAILED = "Error while generating streamed response"


class DeletedThreadFilter(logging.Filter):
    """The SDK logs a traceback (twice) when a stream's thread is deleted while it streams
    (saving an item finds no thread): one INFO line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, NotFoundError):
            return True
        if record.msg == SDK_STREAM_FAILED:
            return False
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = "stream ended: its thread is gone (%s)", (exc,)
        record.exc_info = record.exc_text = None
        return True


def quiet_deleted_threads() -> None:
    """Install DeletedThreadFilter on the SDK's server logger (once)."""
    sdk = logging.getLogger("chatkit")
    if not any(isinstance(f, DeletedThreadFilter) for f in sdk.filters):
        sdk.addFilter(DeletedThreadFilter())
