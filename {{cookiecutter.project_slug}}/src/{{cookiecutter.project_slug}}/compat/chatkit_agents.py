"""Citations for openai-chatkit's `stream_agent_response`: it validates an annotation against
classes that refuse openai's same-shaped event classes (the answer would end with an error), so
the annotation events reach it as plain dicts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from agents import RunResultStreaming
from agents.stream_events import StreamEvent
from openai.types.responses import ResponseOutputTextAnnotationAddedEvent
from pydantic import BaseModel

ANNOTATION_ADDED = "response.output_text.annotation.added"


class AnnotationSafeResult:
    """A streamed run whose annotation events carry plain-dict annotations, for
    `stream_agent_response`; keep the run itself for `cancel()` and `raw_responses`."""

    def __init__(self, result: RunResultStreaming) -> None:
        self.result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    async def stream_events(self) -> AsyncIterator[StreamEvent]:
        async for event in self.result.stream_events():
            if event.type == "raw_response_event" and event.data.type == ANNOTATION_ADDED:
                data = cast(ResponseOutputTextAnnotationAddedEvent, event.data)
                if data.annotation is None:
                    continue  # nothing to show; chatkit would fail on it too
                if isinstance(data.annotation, BaseModel):
                    data.annotation = data.annotation.model_dump(mode="json")  # type: ignore[assignment]
            yield event


def annotation_safe(result: RunResultStreaming) -> RunResultStreaming:
    """`result` for `stream_agent_response`: its annotation events carry plain dicts."""
    return cast(RunResultStreaming, AnnotationSafeResult(result))
