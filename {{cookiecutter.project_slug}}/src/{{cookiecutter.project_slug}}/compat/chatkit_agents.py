"""openai-chatkit's `stream_agent_response` and openai 3.x: citations reach it in a form it reads.

openai types `response.output_text.annotation.added`'s `annotation` with classes of the event's
own module; chatkit validates it against `response_output_text.Annotation`, whose pydantic
classes refuse an instance of a same-shaped other class (ValidationError: the answer ends
with `stream.error`). A plain dict validates, so those events reach chatkit with one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from agents import RunResultStreaming
from agents.stream_events import StreamEvent
from openai.types.responses import ResponseOutputTextAnnotationAddedEvent
from pydantic import BaseModel

ANNOTATION_ADDED = "response.output_text.annotation.added"


class AnnotationSafeResult:
    """A streamed run whose annotation events carry plain-dict annotations (others untouched).

    Give it to `stream_agent_response` instead of the run (which it reads only through
    `stream_events`); keep the run itself for `cancel()` and `raw_responses`.
    """

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
