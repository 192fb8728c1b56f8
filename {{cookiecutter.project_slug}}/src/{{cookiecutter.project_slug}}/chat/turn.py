"""What a turn runs with besides the history: the user's picks and the app context.

`turn_options`: the composer's picks (`inference_options`) of the message being answered; a
turn that continues without one (a client tool's output, structured input) keeps the last
user message's model but forces no tool again. `app_context_item`: the request's locale and
APP_CONTEXT_HEADERS as one delimited user-role input item, built each turn, never stored.
"""

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
    """`<APP_CONTEXT>{"locale": ..., "x-page-url": ...}</APP_CONTEXT>` as a user message.

    A user-role message, not a bare `input_text` item (Chat Completions refuses those), with
    plain string content (both APIs take it); JSON with `<` escaped, so no value can close
    the block.
    """
    facts = json.dumps({"locale": context.locale, **context.app_context}, ensure_ascii=False)
    body = facts.replace("<", "\\u003c")
    text = f"<APP_CONTEXT>\n{APP_CONTEXT_INTRO}\n{body}\n</APP_CONTEXT>"
    return EasyInputMessageParam(type="message", role="user", content=text)
