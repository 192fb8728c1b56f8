"""The operator's `threads` and `users` command groups (split from cli.py): thread status,
and a user's data exported or deleted. They act on any user's rows: run them as an operator."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from .settings import get_settings

if TYPE_CHECKING:  # the store is imported only when a command needs it
    from .store.thread_status import StatusName

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
        from .ops import storage_commands

        if args.command == "attachments":
            return asyncio.run(storage_commands.move_command(get_settings(), args.to, args.json))
        return asyncio.run(storage_commands.show_command(get_settings(), args.user_id, args.json))
    if args.command == "threads":
        from .store.thread_status import status_command

        name = STATUSES[args.threads_command]
        reason = getattr(args, "reason", None)
        return asyncio.run(status_command(get_settings(), args.thread_id, name, reason, args.json))
    from .ops import user_data

    if args.users_command == "export":
        return asyncio.run(user_data.export_command(get_settings(), args.user_id, args.out))
    return asyncio.run(user_data.delete_command(get_settings(), args.user_id, args.yes, args.json))
