"""Log records a test reads back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class Captured(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capturing(level: int = logging.WARNING) -> Iterator[Captured]:
    """Records at `level` and above from now on (an app built later would replace the root
    handlers); the root logger lets them through meanwhile (the test apps log at WARNING)."""
    handler = Captured(level)
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(min(saved, level))
    try:
        yield handler
    finally:
        root.setLevel(saved)
        root.removeHandler(handler)
