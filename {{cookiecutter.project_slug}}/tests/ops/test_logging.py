"""Logs: readable lines in development, JSON in production (LOG_FORMAT), uvicorn's included."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from pydantic import ValidationError

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.ops.logs import (
    ConsoleFormatter,
    JsonFormatter,
    configure_logging,
    logging_config,
)
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support.app import TEST_AUTH_SECRET, AppServer
from tests.support.commands import spawn
from tests.support.fake_openai import FakeModel

PACKAGE = "{{ cookiecutter.project_slug }}"
CONSOLE_LINE = re.compile(
    r"^(?P<time>\d\d:\d\d:\d\d\.\d{3}) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) +"
    r"(?P<logger>[\w.]+)  (?P<message>.*)$"
)
ACCESS_ARGS = ("127.0.0.1:51000", "GET", "/health?token=x", "1.1", 200)


def record(
    name: str, msg: str, args: tuple[object, ...] = (), **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    made.__dict__.update(extra)
    return made


def test_console_format_is_time_level_logger_message_then_fields() -> None:
    """One readable line: time, level, logger, message, then `key=value` (quoted if needed)."""
    line = ConsoleFormatter(use_colors=False).format(
        record(f"{PACKAGE}.http.middleware", "request", method="POST", path="/chatkit", ms=1.5)
    )
    match = CONSOLE_LINE.match(line)
    assert match, line
    assert match["level"] == "INFO" and match["logger"] == f"{PACKAGE}.http.middleware"
    assert match["message"] == "request  method=POST path=/chatkit ms=1.5"
    quoted = ConsoleFormatter(use_colors=False).format(record("x", "m", note="two words", n=None))
    assert quoted.endswith('m  note="two words" n=None'), quoted


def test_console_format_shows_the_traceback_below_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    first, *rest = ConsoleFormatter(use_colors=False).format(failed).splitlines()
    assert CONSOLE_LINE.match(first) and first.endswith("failed")
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"


def test_uvicorn_lines_go_through_the_configured_formatter() -> None:
    """uvicorn's access and error records get our format (no handler of their own)."""
    config = logging_config("INFO", "console")
    assert config["loggers"]["uvicorn.access"] == {"handlers": [], "propagate": True}
    assert config["loggers"]["uvicorn.error"] == {"handlers": [], "propagate": True}
    console = ConsoleFormatter(use_colors=False)
    access = console.format(record("uvicorn.access", '%s - "%s %s HTTP/%s" %d', ACCESS_ARGS))
    assert CONSOLE_LINE.match(access), access
    assert access.endswith('uvicorn.access  127.0.0.1:51000 - "GET /health?token=x HTTP/1.1" 200')
    as_json = json.loads(
        JsonFormatter().format(record("uvicorn.error", "Started server process [%d]", (42,)))
    )
    assert as_json["logger"] == "uvicorn.error"
    assert as_json["message"] == "Started server process [42]"


def make_settings(**values: object) -> Settings:
    return Settings(_env_file=None, auth_secret=TEST_AUTH_SECRET, **values)  # type: ignore[arg-type]


def test_log_format_defaults_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """console in development, json in production; LOG_FORMAT wins; others are refused."""
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert make_settings().effective_log_format == "console"
    production = make_settings(
        environment="production",
        database_url="postgresql://app@db/app",
        public_url="https://chat.example.com",
    )
    assert production.effective_log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert make_settings().effective_log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "")
    assert make_settings().effective_log_format == "console"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        make_settings()


class ServeProcess:
    """`<package> serve --port 0` in a subprocess, its stderr collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = spawn(
            [sys.executable, "-m", PACKAGE, "serve", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, seconds: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.reader.join(10)


@contextmanager
def serving(database_url: str, log_format: str) -> Iterator[tuple[ServeProcess, int]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTH_SECRET": TEST_AUTH_SECRET,
        "LOG_FORMAT": log_format,
        "LOG_LEVEL": "INFO",
        "ENVIRONMENT": "development",
        "CHAT_PAGE": "false",
        "METRICS": "false",
    }
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    serve = ServeProcess(env)
    try:
        port = int(serve.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")[1])
        yield serve, port
    finally:
        serve.stop()


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_serve_writes_every_line_in_one_format(database_url: str, log_format: str) -> None:
    """`serve` gives uvicorn our logging: its startup, access and shutdown lines have the same
    format as the app's own (every line a console line, or every line a JSON object)."""
    with serving(database_url, log_format) as (serve, port):
        assert httpx.get(f"http://127.0.0.1:{port}/health?token=secret", timeout=10).is_success
        serve.wait_for(r"GET /health\?token=\*\*\* HTTP/1\.1")
        serve.wait_for(r"/health")  # the app's request line
    lines = [line for line in serve.lines if line.strip()]
    assert lines, "serve logged nothing"
    loggers = set()
    for line in lines:
        if log_format == "console":
            match = CONSOLE_LINE.match(line)
            assert match, f"not a console line: {line!r}\n" + "\n".join(lines)
            loggers.add(match["logger"])
        else:
            try:
                entry = json.loads(line)
            except ValueError:
                raise AssertionError(f"not JSON: {line!r}\n" + "\n".join(lines)) from None
            assert {"time", "level", "logger", "message"} <= entry.keys()
            loggers.add(entry["logger"])
    assert {"uvicorn.error", "uvicorn.access", f"{PACKAGE}.http.middleware"} <= loggers, loggers
    assert "secret" not in "\n".join(lines), "query values stay masked"


async def test_no_provider_request_lines_at_info(
    app_server: AppServer, fake_model: FakeModel
) -> None:
    """At LOG_LEVEL=INFO a turn's model requests leave no line: neither httpx's nor httpx2's
    (the openai client's) nor their transports'."""
    configure_logging("INFO", "console")
    captured: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = captured.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        client = ChatKitClient(app_server.url, app_server.token("log-user"))
        async with client:
            assert not [e for e in await client.send("hello") if e["type"] == "error"]
        assert fake_model.requests, "the model was asked"
    finally:
        logging.getLogger().removeHandler(handler)
        configure_logging("WARNING", "console")
    transports = ("httpx", "httpcore")
    assert [r.getMessage() for r in captured if r.name.startswith(transports)] == []
    assert any(r.name.startswith(PACKAGE) for r in captured), "INFO lines were captured"
