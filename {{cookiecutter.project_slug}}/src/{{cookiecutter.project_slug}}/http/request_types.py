"""Every ChatKit request type in one table (REQUEST_TYPES): its size rules, the targets it loads
and checks, its rate bucket, whether it streams and runs the model, its body limit. Parsing,
checks and limits read the row; a new request type or limit is one row."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chatkit.types import (
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    ChatKitReq,
    InputTranscribeReq,
    ItemsFeedbackReq,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadsUpdateReq,
    UserMessageTagContent,
)
from pydantic import BaseModel

from ..agent.actions import CheckedAction
from ..context import RequestContext
from ..ops.limits import NO_ESTIMATE, Estimate, LeaseLimits
from ..ops.rates import Bucket
from ..settings import Settings
from ..store import PostgresStore
from . import checks, requests

Sizes = Callable[[Any, Settings], None]
Options = Callable[[Any, Settings], None]
Tags = Callable[[Any, Settings], None]
Targets = Callable[[Any, PostgresStore, RequestContext], Awaitable[CheckedAction | None]]
Rate = Callable[[Settings], Bucket]
Exclusive = Callable[[Any], str]


def messages(settings: Settings) -> Bucket:
    return Bucket("messages", settings.rate_limit_messages_per_minute)


def actions(settings: Settings) -> Bucket:
    return Bucket("actions", settings.rate_limit_actions_per_minute)


def transcriptions(settings: Settings) -> Bucket:
    return Bucket("transcriptions", settings.rate_limit_transcriptions_per_minute)


def uploads(settings: Settings) -> Bucket:
    """attachments.create (the upload it prepares) and a direct upload share it."""
    return Bucket("uploads", settings.rate_limit_uploads_per_minute)


def unrated(settings: Settings) -> Bucket:
    return Bucket("messages", 0)


def default_body(settings: Settings) -> int:
    return settings.max_request_bytes


def retried_item(request: ThreadsRetryAfterItemReq) -> str:
    """The lease-id prefix of a retry of this item: one at a time (409 retry_running)."""
    return f"retry.{request.params.thread_id}.{request.params.item_id}."


@dataclass(frozen=True, slots=True)
class RequestType:
    """What one request type needs before the ChatKit server runs it (docs/design_decisions.md,
    "One table of request types"); `runs_model` None: as its action says."""

    sizes: Sizes | None = None
    tags: Tags | None = None
    options: Options | None = None
    targets: Targets | None = None
    rate: Rate | None = None
    turn: bool = False
    streams: bool = False
    runs_model: bool | None = False
    body_limit: Callable[[Settings], int] = default_body
    exclusive: Exclusive | None = None

    def lease_limits(
        self, settings: Settings, request: Any, action: CheckedAction | None
    ) -> LeaseLimits | None:
        """The limits of its turn (None: it takes no turn); with a budget, its estimate inputs."""
        if not self.turn:
            return None
        runs_model = (
            action.handler.runs_model
            if self.runs_model is None and action
            else bool(self.runs_model)
        )
        budget = settings.user_daily_tokens if runs_model else 0
        estimate = NO_ESTIMATE
        if budget:
            estimate = Estimate(
                thread=getattr(request.params, "thread_id", None),
                request_chars=request_chars(request, settings),
                history=settings.history_items,
                max_input=settings.max_model_input_bytes,
            )
        return LeaseLimits(
            bucket=(self.rate or unrated)(settings),
            max_streams=settings.max_concurrent_streams_per_user if self.streams else 0,
            budget=budget,
            estimate=estimate,
            exclusive=self.exclusive(request) if self.exclusive else None,
        )


def request_chars(request: ChatKitReq, settings: Settings) -> int:
    """The characters the request's message adds to the model input (a tag: what it may be)."""
    if not isinstance(request, ThreadsCreateReq | ThreadsAddUserMessageReq):
        return 0
    message = request.params.input
    chars = len(message.quoted_text or "")
    for part in message.content:
        chars += len(part.text)
        if isinstance(part, UserMessageTagContent):
            chars = min(chars + settings.max_message_chars, 2 * settings.max_message_chars)
    return chars


MESSAGE = RequestType(
    sizes=requests.message_sizes,
    tags=requests.message_tags,
    options=checks.message_options,
    targets=checks.message_targets,
    rate=messages,
    turn=True,
    streams=True,
    runs_model=True,
)
ACTION = RequestType(
    sizes=requests.action_sizes,
    targets=checks.action_target,
    rate=actions,
    turn=True,
    streams=True,
    runs_model=None,
)
REQUEST_TYPES: dict[str, RequestType] = {
    "threads.create": MESSAGE,
    "threads.add_user_message": MESSAGE,
    "threads.retry_after_item": RequestType(
        targets=checks.retry_target,
        rate=messages,
        turn=True,
        streams=True,
        runs_model=True,
        exclusive=retried_item,
    ),
    "threads.add_structured_input": RequestType(
        sizes=requests.answers_sizes,
        targets=checks.structured_input_target,
        turn=True,
        streams=True,
        runs_model=True,
    ),
    "threads.add_client_tool_output": RequestType(
        sizes=requests.tool_output_sizes,
        targets=checks.client_tool_output_target,
        turn=True,
        streams=True,
        runs_model=True,
    ),
    "threads.custom_action": ACTION,
    "threads.sync_custom_action": RequestType(
        sizes=requests.action_sizes,
        targets=checks.action_target,
        rate=actions,
        turn=True,
        runs_model=None,
    ),
    "threads.update": RequestType(sizes=requests.title_sizes),
    "items.feedback": RequestType(sizes=requests.feedback_sizes),
    "attachments.create": RequestType(sizes=requests.attachment_sizes, rate=uploads),
    "attachments.delete": RequestType(targets=checks.attachment_exists),
    "input.transcribe": RequestType(
        sizes=requests.audio_sizes, rate=transcriptions, body_limit=requests.audio_body_limit
    ),
}
PLAIN = RequestType()


def request_type(type_: str | None) -> RequestType:
    return REQUEST_TYPES.get(type_ or "", PLAIN)


def body_limit_for(settings: Settings) -> Callable[[str | None], int]:
    """The body limit of a request type (an unknown one: MAX_REQUEST_BYTES)."""
    return lambda type_: request_type(type_).body_limit(settings)


# The models the rows are written for: a renamed type in the SDK fails here, at import.
_KNOWN: tuple[type[BaseModel], ...] = (
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    InputTranscribeReq,
    ItemsFeedbackReq,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadsUpdateReq,
)
assert {model.model_fields["type"].default for model in _KNOWN} == set(REQUEST_TYPES)
