"""openai-chatkit and openai-agents: the server's request handlers, and names in their output."""

from __future__ import annotations

from typing import Any

from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import ChatKitReq, is_streaming_req

__all__ = ["FAKE_RESPONSES_ID", "SDK_TASK_NOISE", "process_parsed"]


async def process_parsed(
    server: ChatKitServer[Any], request: ChatKitReq, context: Any
) -> StreamingResult | NonStreamingResult:
    """`server.process` for a parsed request (`process` builds a TypeAdapter per call)."""
    if is_streaming_req(request):
        return StreamingResult(server._process_streaming(request, context))
    return NonStreamingResult(await server._process_non_streaming(request, context))


# What asyncio logs about the SDK's internal queue task when a client disconnects.
SDK_TASK_NOISE = ("StopAsyncIteration", "_AsyncQueueIterator.__anext__")
