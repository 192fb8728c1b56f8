"""Chaining turns with the Responses API's `previous_response_id` (README, "Chain turns with
previous_response_id"), off until CHAIN_RESPONSES is True: the thread remembers its last
response in `thread.metadata`, and the next turn sends only what came after that answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatkit.types import AssistantMessageItem, ThreadItem, ThreadMetadata

CHAIN_RESPONSES = False
"""True: each turn continues the previous response on OpenAI's side (Responses API only)."""
KEY = "previous_response"
"""`thread.metadata[KEY]`: `{"id": the last response id, "after": our id of its answer}`."""


def chained_turn(
    thread: ThreadMetadata, history: Sequence[ThreadItem], responses_api: bool
) -> tuple[str | None, list[ThreadItem]]:
    """The response to continue and the items to send: after the answer that response gave.
    Whenever the thread no longer ends as that answer left it (a retry, a removed answer, a
    client tool), nothing is chained and the whole history goes, as without chaining."""
    remembered: Any = thread.metadata.get(KEY)
    if not (CHAIN_RESPONSES and responses_api and isinstance(remembered, dict)):
        return None, list(history)
    answers = [i for i, item in enumerate(history) if isinstance(item, AssistantMessageItem)]
    if not answers or history[answers[-1]].id != remembered.get("after"):
        return None, list(history)
    return str(remembered.get("id")), list(history[answers[-1] + 1 :])


def remember(thread: ThreadMetadata, response_id: str | None, answer_id: str | None) -> None:
    """Keep the turn's last response for the next turn (the SDK saves the thread's metadata,
    which the client never sees)."""
    if CHAIN_RESPONSES and response_id and answer_id:
        thread.metadata[KEY] = {"id": response_id, "after": answer_id}
