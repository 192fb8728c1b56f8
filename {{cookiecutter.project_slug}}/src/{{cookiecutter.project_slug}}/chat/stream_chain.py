"""The turn's stream converter: agent.converters.CONVERTERS chained over the image converter
(IMAGE_GENERATION) or the SDK's own, as one class whose method order is the list's order, so
an override that calls `super()` composes with the ones below it instead of replacing them."""

from __future__ import annotations

import functools
from typing import cast

from chatkit.agents import ResponseStreamConverter
from chatkit.types import ThreadMetadata

from ..agent import converters
from ..agent.hosted import PARTIAL_IMAGES
from ..context import RequestContext
from ..settings import Settings
from ..store.image_store import GeneratedImageStore
from .image_stream import ImageStreamConverter

DEFAULT_CONVERTER = ResponseStreamConverter()


@functools.cache
def chained(layers: tuple[type[ResponseStreamConverter], ...]) -> type[ResponseStreamConverter]:
    return type("TurnStreamConverter", layers, {})


def stream_converter(
    settings: Settings,
    images: GeneratedImageStore | None,
    thread: ThreadMetadata,
    context: RequestContext,
) -> ResponseStreamConverter:
    """CONVERTERS over the image converter (IMAGE_GENERATION) or the SDK's own."""
    layers = tuple(converters.CONVERTERS)
    if settings.image_generation and images is not None:
        image_chain = ImageStreamConverter
        if layers:
            image_chain = cast(type[ImageStreamConverter], chained((*layers, ImageStreamConverter)))
        return image_chain(images, thread, context, partial_images=PARTIAL_IMAGES)
    if not layers:
        return DEFAULT_CONVERTER
    return chained(layers)()
