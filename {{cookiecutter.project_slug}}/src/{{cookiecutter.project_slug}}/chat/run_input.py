"""What a turn runs with besides the history: the composer's picks (`turn_options`; a turn with
no new message keeps the last model but forces no tool again) and the request's locale and
APP_CONTEXT_HEADERS as one user-role item, built each turn, never stored."""

from __future__ import annotations

import json
from collections.abc import Sequence

from agents import TResponseInputItem
from chatkit.types import InferenceOptions, ThreadItem, UserMessageItem
from openai.types.responses import EasyInputMessageParam

from ..context import RequestContext

APP_CONTEXT_INTRO = (
    "Facts about this request from the app the user is chatting in (set by the app, "
    "not typed by the user):"
)


def turn_options(
    message: UserMessageItem | None, history: Sequence[ThreadItem]
) -> InferenceOptions | None:
    """The picks that apply to this turn (see the module's docstring)."""
    if message is not None:
        return message.inference_options
    for item in reversed(history):
        if isinstance(item, UserMessageItem):
            return item.inference_options.model_copy(update={"tool_choice": None})
    return None


def app_context_item(context: RequestContext) -> TResponseInputItem:
    """`<APP_CONTEXT>{...}</APP_CONTEXT>` as a user message with string content (Chat
    Completions refuses a bare `input_text` item); `<` escaped, so no value can close the block."""
    facts = json.dumps({"locale": context.locale, **context.app_context}, ensure_ascii=False)
    body = facts.replace("<", "\\u003c")
    text = f"<APP_CONTEXT>\n{APP_CONTEXT_INTRO}\n{body}\n</APP_CONTEXT>"
    return EasyInputMessageParam(type="message", role="user", content=text)
