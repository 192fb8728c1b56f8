"""Your stream converters (ChatKit's `ResponseStreamConverter` subclasses: citation enrichment,
image links, partial images), listed in CONVERTERS. The turn chains them, first listed first,
over the image converter when IMAGE_GENERATION is on (chat/stream_chain.py)."""

from __future__ import annotations

from chatkit.agents import ResponseStreamConverter

CONVERTERS: list[type[ResponseStreamConverter]] = []
"""First listed first; an override calling `super()` hands on to the next. No `__init__`."""
