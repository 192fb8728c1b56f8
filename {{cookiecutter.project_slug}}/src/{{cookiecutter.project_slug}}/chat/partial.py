"""The assistant messages of a turn still streaming: when the model fails mid-answer the SDK
drops them, though the user saw their text; `PartialAnswers` makes their Done events, which
respond.py yields before the error."""

from __future__ import annotations

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartAnnotationAdded,
    AssistantMessageContentPartDone,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
)


class PartialAnswers:
    """Unfinished assistant messages, kept up to date from the turn's events."""

    def __init__(self) -> None:
        self.open: dict[str, AssistantMessageItem] = {}

    def see(self, event: ThreadStreamEvent) -> None:
        if isinstance(event, ThreadItemUpdatedEvent):  # most events: text deltas
            item = self.open.get(event.item_id)
            if item is not None:
                _apply(item, event.update)
        elif isinstance(event, ThreadItemAddedEvent):
            if isinstance(event.item, AssistantMessageItem):
                self.open[event.item.id] = event.item.model_copy(deep=True)
        elif isinstance(event, ThreadItemDoneEvent | ThreadItemReplacedEvent):
            self.open.pop(event.item.id, None)
        elif isinstance(event, ThreadItemRemovedEvent):
            self.open.pop(event.item_id, None)

    def done_events(self) -> list[ThreadItemDoneEvent]:
        """Done events for the unfinished messages with some text (then forgets them)."""
        done = [
            ThreadItemDoneEvent(item=item)
            for item in self.open.values()
            if any(part.text.strip() for part in item.content)
        ]
        self.open.clear()
        return done


def _apply(item: AssistantMessageItem, update: object) -> None:
    """One streamed change to a message, as ChatKitServer applies it to its pending copy."""
    if isinstance(update, AssistantMessageContentPartTextDelta):
        _part(item, update.content_index).text += update.delta
    elif isinstance(update, AssistantMessageContentPartAdded | AssistantMessageContentPartDone):
        _part(item, update.content_index)
        item.content[update.content_index] = update.content.model_copy(deep=True)
    elif isinstance(update, AssistantMessageContentPartAnnotationAdded):
        _part(item, update.content_index).annotations.append(update.annotation)


def _part(item: AssistantMessageItem, index: int) -> AssistantMessageContent:
    while len(item.content) <= index:
        item.content.append(AssistantMessageContent(text=""))
    return item.content[index]
