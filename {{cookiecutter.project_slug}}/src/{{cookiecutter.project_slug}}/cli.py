"""The project's command line: `python -m <package>` or the console script of the same name
(`--help` lists the commands)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import secrets
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from .cli_data import add_data_commands, run_data_command
from .settings import Settings, describe_invalid, get_settings

PACKAGE = __package__ or __name__.rpartition(".")[0]
SERVE_LIMIT_CONCURRENCY = 1000
SERVE_BACKLOG = 2048
SERVE_HEADER_TIMEOUT = 15.0
SERVE_MAX_HEADER_BYTES = 64 * 1024


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    parser = argparse.ArgumentParser(prog=PACKAGE, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API with uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--reload", action="store_true", help="restart on code changes")
    serve.add_argument(
        "--keep-alive",
        type=int,
        default=75,
        help="seconds an idle connection stays open; longer than any client's or load "
        "balancer's idle timeout, so none reuses a connection the server just closed",
    )
    serve.add_argument(
        "--limit-concurrency",
        type=int,
        default=SERVE_LIMIT_CONCURRENCY,
        help="most open connections (streams included) per worker; beyond it new requests get "
        f"503 at once instead of slowing every user down (0: no limit; default "
        f"{SERVE_LIMIT_CONCURRENCY})",
    )
    serve.add_argument(
        "--backlog",
        type=int,
        default=SERVE_BACKLOG,
        help=f"connections the OS queues before they are accepted (default {SERVE_BACKLOG})",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=SERVE_HEADER_TIMEOUT,
        help="seconds a client has to send a request's headers, from connecting (or from the "
        "request's first byte on a kept-alive connection); slower ones are disconnected, so "
        f"slow clients cannot hold connections (default {SERVE_HEADER_TIMEOUT:g})",
    )
    serve.add_argument(
        "--max-header-bytes",
        type=int,
        default=SERVE_MAX_HEADER_BYTES,
        help=f"larger request headers get 431 (default {SERVE_MAX_HEADER_BYTES})",
    )

    db_commands = add_group(commands, "db", "manage the database schema")
    db_commands.add_parser("upgrade", help="create or migrate the tables (idempotent)")
    db_commands.add_parser("status", help="show the schema version and pending migrations")
    prune = db_commands.add_parser(
        "prune",
        help="delete attachments never sent in a message and older than "
        "ATTACHMENT_ORPHAN_HOURS, and threads idle for RETENTION_DAYS (run it daily, from cron "
        "or a scheduled job)",
    )
    prune.add_argument("--json", action="store_true", help="print the counts as JSON")

    token = commands.add_parser("token", help="print a development bearer token")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")

    commands.add_parser("secret", help="print a fresh random AUTH_SECRET (for .env)")

    chat = commands.add_parser("chat", help="chat with the running app in the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:8000", help="where the app runs")
    chat.add_argument("--user", default="dev-user", help="user id to chat as")
    chat.add_argument("--thread", default=None, help="resume this thread id")

    feedback_commands = add_group(commands, "feedback", "feedback users gave on items")
    export = feedback_commands.add_parser(
        "export", help="print the stored feedback as JSON lines, oldest change first"
    )
    add_since(export, "only rows changed at or after this time")

    usage_commands = add_group(commands, "usage", "model usage recorded per model call")
    report = usage_commands.add_parser(
        "report", help="tokens used, by user, model or UTC day, the biggest first"
    )
    add_since(report, "only calls at or after this time")
    report.add_argument("--by", choices=("user", "model", "day"), default="user")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    add_data_commands(commands)
    return parser


def add_group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command with subcommands of its own (`db upgrade`); their name in `<name>_command`."""
    group = commands.add_parser(name, help=help)
    return group.add_subparsers(
        dest=f"{name}_command", required=True, metavar=f"{name.upper()}_COMMAND"
    )


def add_since(parser: argparse.ArgumentParser, what: str) -> None:
    """The `--since` option of the reports: an ISO 8601 date or date-time."""
    parser.add_argument(
        "--since",
        type=iso_datetime,
        default=None,
        metavar="ISO-DATE-OR-DATETIME",
        help=f"{what} (e.g. 2025-03-01 or 2025-03-01T12:00:00+02:00; without an offset, UTC)",
    )


def iso_datetime(value: str) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime (UTC unless it names an offset)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date or date-time: {value!r} "
            "(e.g. 2025-03-01 or 2025-03-01T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValidationError as exc:
        print(f"error: {describe_invalid(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def http_protocol(header_timeout: float, max_header_bytes: int) -> Any:
    """uvicorn's httptools protocol with a header deadline and size limit, or "auto" (h11,
    size-limited only) when httptools is not installed."""
    try:
        from .compat.uvicorn_http import HeaderGuardProtocol
    except ImportError:
        return "auto"
    return functools.partial(
        HeaderGuardProtocol, header_timeout=header_timeout, max_header_bytes=max_header_bytes
    )


def missing_package(settings: Settings) -> str | None:
    """What the configuration needs but is not installed (one line), or None."""
    from .dev.embedded import MISSING_MESSAGE, embedded_available
    from .settings import EMBEDDED

    if settings.database_url == EMBEDDED and not embedded_available():
        return MISSING_MESSAGE
    if settings.otel_exporter_otlp_endpoint:
        from .ops.tracing import missing_packages

        return missing_packages()
    return None


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port, so uvicorn could not bind it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError:
        return False  # uvicorn reports a host it cannot resolve itself
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def unsafe_to_serve(settings: Settings, host: str) -> str | None:
    """Why `serve --host host` must not start with these settings (one line), or None."""
    from .ops.metrics import is_loopback_host

    if settings.metrics and settings.metrics_token is None and not is_loopback_host(host):
        return (
            f"METRICS=true without METRICS_TOKEN would serve /metrics to anyone who reaches "
            f"--host {host}: set METRICS_TOKEN, or bind to 127.0.0.1"
        )
    return None


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """What `serve` hands to uvicorn.run besides the app (connection limits and timeouts)."""
    from .ops.logs import logging_config

    return {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "reload": args.reload,
        "timeout_keep_alive": args.keep_alive,
        "limit_concurrency": args.limit_concurrency or None,
        "backlog": args.backlog,
        "h11_max_incomplete_event_size": args.max_header_bytes,
        "http": http_protocol(args.header_timeout, args.max_header_bytes),
        "log_level": get_settings().log_level.lower(),
        # uvicorn's own lines (startup, access) in the app's format, in every process it starts
        "log_config": logging_config(get_settings().log_level, get_settings().effective_log_format),
    }


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed command."""
    if args.command == "serve":
        import uvicorn

        get_settings()  # fail fast, with a clear message, on bad configuration
        problem = missing_package(get_settings()) or unsafe_to_serve(get_settings(), args.host)
        if problem is None:
            from .ops.storage_commands import exit_if_unusable, storage_problem

            exit_if_unusable(storage_problem(get_settings()))
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 2
        if args.port and port_in_use(args.host, args.port):
            print(
                f"error: port {args.port} on {args.host} is in use (is the app already running?): "
                f"stop that process, or serve on another port with --port {args.port + 1}",
                file=sys.stderr,
            )
            return 2
        uvicorn.run(f"{PACKAGE}.main:app", **serve_options(args))
        return 0
    if args.command == "db":
        from .store import db

        if args.db_command == "upgrade":
            return asyncio.run(db.upgrade_command(get_settings()))
        if args.db_command == "prune":
            from .ops.retention import prune_command

            return asyncio.run(prune_command(get_settings(), args.json))
        return asyncio.run(db.status_command(get_settings()))
    if args.command == "secret":
        print(secrets.token_urlsafe(48))
        return 0
    if args.command == "token":
        from .context import create_token

        longest = get_settings().token_max_ttl_seconds
        if args.ttl is not None and args.ttl > longest:
            print(
                f"error: --ttl {args.ttl} is over TOKEN_MAX_TTL_SECONDS ({longest}); "
                "the app would refuse such a token",
                file=sys.stderr,
            )
            return 2
        print(create_token(args.user_id, settings=get_settings(), ttl_seconds=args.ttl))
        return 0
    if args.command == "chat":
        from .dev.terminal_chat import run_chat

        return run_chat(get_settings(), url=args.url, user_id=args.user, thread_id=args.thread)
    if args.command == "usage":
        from .ops.usage import report_command

        return asyncio.run(report_command(get_settings(), args.since, args.by, args.json))
    if args.command == "feedback":
        from .chat.feedback import export_command

        return asyncio.run(export_command(get_settings(), args.since))
    if args.command in ("threads", "users", "attachments"):
        return run_data_command(args)
    raise AssertionError(f"unknown command {args.command}")
