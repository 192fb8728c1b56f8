"""The project's command line: `python -m <package>` or the console script of the same name
(`--help` lists the commands)."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError

from .compat.obstore_exit import exit_process
from .settings import describe_invalid, get_settings

if TYPE_CHECKING:  # the store is imported only when a command needs it
    from .store.thread_status import StatusName

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


def entry() -> NoReturn:
    """`python -m` and the console script: `main`, then an exit obstore cannot abort."""
    exit_process(main())


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


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed command."""
    if args.command == "serve":
        from .commands.serve_command import serve_command

        return serve_command(args)
    if args.command == "db":
        from .commands import db_commands

        if args.db_command == "upgrade":
            return asyncio.run(db_commands.db_upgrade_command(get_settings()))
        if args.db_command == "prune":
            return asyncio.run(db_commands.db_prune_command(get_settings(), args.json))
        return asyncio.run(db_commands.db_status_command(get_settings()))
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
        from .commands.report_commands import usage_report_command

        return asyncio.run(usage_report_command(get_settings(), args.since, args.by, args.json))
    if args.command == "feedback":
        from .commands.report_commands import feedback_export_command

        return asyncio.run(feedback_export_command(get_settings(), args.since))
    if args.command in ("threads", "users", "attachments"):
        return run_data_command(args)
    raise AssertionError(f"unknown command {args.command}")


STATUSES: dict[str, StatusName] = {"lock": "locked", "close": "closed", "unlock": "active"}


def add_data_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`threads lock|close|unlock`, `users export|delete|show` and `attachments move`."""
    threads = commands.add_parser("threads", help="lock, close or reopen a thread (any user's)")
    thread_commands = threads.add_subparsers(
        dest="threads_command", required=True, metavar="THREADS_COMMAND"
    )
    for name, help_text in (
        ("lock", "refuse new messages and actions for now (ChatKit disables the composer)"),
        ("close", "end the thread for good (ChatKit shows a banner instead of the composer)"),
        ("unlock", "make a locked or closed thread active again"),
    ):
        command = thread_commands.add_parser(name, help=help_text)
        command.add_argument("thread_id")
        if name != "unlock":
            command.add_argument("--reason", default=None, help="shown to the user")
        command.add_argument("--json", action="store_true", help="print the result as JSON")

    users = commands.add_parser("users", help="one user's data: export it or delete it")
    user_commands = users.add_subparsers(
        dest="users_command", required=True, metavar="USERS_COMMAND"
    )
    export = user_commands.add_parser(
        "export", help="every thread, item, attachment, feedback and usage row as one JSON document"
    )
    export.add_argument("user_id")
    export.add_argument(
        "--out", type=Path, default=None, help="write to this file (mode 0600) instead of stdout"
    )
    delete = user_commands.add_parser("delete", help="delete every row of the user, at once")
    delete.add_argument("user_id")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.add_argument("--json", action="store_true", help="print what was deleted as JSON")
    show = user_commands.add_parser(
        "show", help="the user's stored bytes and uploads against their limits"
    )
    show.add_argument("user_id")
    show.add_argument("--json", action="store_true", help="print the figures as JSON")

    attachments = commands.add_parser("attachments", help="where attachment bytes are kept")
    attachment_commands = attachments.add_subparsers(
        dest="attachments_command", required=True, metavar="ATTACHMENTS_COMMAND"
    )
    move = attachment_commands.add_parser(
        "move",
        help="copy attachment and generated image bytes to the bucket of ATTACHMENT_STORAGE "
        "(--to s3) or back into PostgreSQL (--to postgres); resumable, safe to run twice",
    )
    move.add_argument("--to", choices=("s3", "postgres"), required=True)
    move.add_argument("--json", action="store_true", help="print the counts as JSON")


def run_data_command(args: argparse.Namespace) -> int:
    """Dispatch a parsed `threads`, `users` or `attachments` command."""
    if args.command == "attachments" or getattr(args, "users_command", "") == "show":
        from .commands import storage_commands

        if args.command == "attachments":
            return asyncio.run(storage_commands.move_command(get_settings(), args.to, args.json))
        return asyncio.run(storage_commands.show_command(get_settings(), args.user_id, args.json))
    if args.command == "threads":
        from .commands.data_commands import threads_status_command

        name = STATUSES[args.threads_command]
        reason = getattr(args, "reason", None)
        return asyncio.run(
            threads_status_command(get_settings(), args.thread_id, name, reason, args.json)
        )
    from .commands import data_commands

    if args.users_command == "export":
        return asyncio.run(
            data_commands.users_export_command(get_settings(), args.user_id, args.out)
        )
    return asyncio.run(
        data_commands.users_delete_command(get_settings(), args.user_id, args.yes, args.json)
    )
