"""Chaining turns with the Responses API's `previous_response_id` (README, "Chain turns with
previous_response_id"), off until CHAIN_RESPONSES is True: the thread remembers its last
response in `thread.metadata`, and the next turn sends only what came after that answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatkit.types import AssistantMessageItem, ThreadItem, ThreadMetadata

CHAIN_RESPONSES = False
KEY = "previous_response"  # thread.metadata[KEY]: {"id": response id, "after": its answer's id}


def chained_turn(
    thread: ThreadMetadata, history: Sequence[ThreadItem], responses_api: bool
) -> tuple[str | None, list[ThreadItem]]:
    """The response to continue and the items after its answer; none and the whole history
    whenever the thread no longer ends as that answer left it (retry, removal, client tool)."""
    remembered: Any = thread.metadata.get(KEY)
    if not (CHAIN_RESPONSES and responses_api and isinstance(remembered, dict)):
        return None, list(history)
    answers = [i for i, item in enumerate(history) if isinstance(item, AssistantMessageItem)]
    if not answers or history[answers[-1]].id != remembered.get("after"):
        return None, list(history)
    return str(remembered.get("id")), list(history[answers[-1] + 1 :])


def remember(thread: ThreadMetadata, response_id: str | None, answer_id: str | None) -> None:
    """Keep the turn's last response for the next turn (the SDK saves thread.metadata)."""
    if CHAIN_RESPONSES and response_id and answer_id:
        thread.metadata[KEY] = {"id": response_id, "after": answer_id}
