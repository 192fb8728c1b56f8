"""Your stream converters (ChatKit's `ResponseStreamConverter` subclasses: citation enrichment,
image links, partial images), listed in CONVERTERS. The turn chains them, first listed first,
over the image converter when IMAGE_GENERATION is on (chat/stream_chain.py)."""

from __future__ import annotations

from chatkit.agents import ResponseStreamConverter

CONVERTERS: list[type[ResponseStreamConverter]] = []
"""Converter classes, first listed first; an override that calls `super()` hands on to the
next (and finally to the image converter or the SDK's own). Define no `__init__`."""
