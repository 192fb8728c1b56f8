"""The project's command line: `python -m <package>` or the console script of the same name.

serve              run the API with uvicorn
db upgrade         create or migrate the tables (idempotent)
db status          show the schema version and pending migrations
token USER_ID      print a development bearer token for USER_ID
chat               chat with the running app in the terminal
feedback export    print the stored item feedback as JSON lines (--since DATE-OR-TIME)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from .settings import get_settings

PACKAGE = __package__ or __name__.rpartition(".")[0]


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

    db = commands.add_parser("db", help="manage the database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_commands.add_parser("upgrade", help="create or migrate the tables (idempotent)")
    db_commands.add_parser("status", help="show the schema version and pending migrations")

    token = commands.add_parser("token", help="print a development bearer token")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")

    chat = commands.add_parser("chat", help="chat with the running app in the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:8000", help="where the app runs")
    chat.add_argument("--user", default="dev-user", help="user id to chat as")
    chat.add_argument("--thread", default=None, help="resume this thread id")

    feedback = commands.add_parser("feedback", help="feedback users gave on items")
    feedback_commands = feedback.add_subparsers(
        dest="feedback_command", required=True, metavar="FEEDBACK_COMMAND"
    )
    export = feedback_commands.add_parser(
        "export", help="print the stored feedback as JSON lines, oldest change first"
    )
    export.add_argument(
        "--since",
        type=iso_datetime,
        default=None,
        metavar="ISO-DATE-OR-DATETIME",
        help="only rows changed at or after this time (e.g. 2025-03-01 or "
        "2025-03-01T12:00:00+02:00; without an offset it is UTC)",
    )
    return parser


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        print(f"error: invalid configuration: {problems}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed command."""
    if args.command == "serve":
        import uvicorn

        get_settings()  # fail fast, with a clear message, on bad configuration
        uvicorn.run(
            f"{PACKAGE}.main:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            reload=args.reload,
            timeout_keep_alive=args.keep_alive,
            log_level=get_settings().log_level.lower(),
        )
        return 0
    if args.command == "db":
        from . import db

        if args.db_command == "upgrade":
            return asyncio.run(db.upgrade_command(get_settings()))
        return asyncio.run(db.status_command(get_settings()))
    if args.command == "token":
        from .context import create_token

        print(create_token(args.user_id, ttl_seconds=args.ttl))
        return 0
    if args.command == "chat":
        from .chat import run_chat

        return run_chat(url=args.url, user_id=args.user, thread_id=args.thread)
    if args.command == "feedback":
        from .feedback import export_command

        return asyncio.run(export_command(get_settings(), args.since))
    raise AssertionError(f"unknown command {args.command}")
