"""`db upgrade`, `db status` and `db prune`."""

from __future__ import annotations

import json

from ..settings import Settings
from ..store.db import apply_migrations, schema_status
from ..store.pruning import prune_expired_threads, prune_orphans
from .admin import PACKAGE, admin_command, schema_command


async def db_upgrade_command(settings: Settings) -> int:
    """`db upgrade`: create or migrate the tables. Returns the process exit code."""

    async def upgrade(conninfo: str) -> None:
        for name in await apply_migrations(conninfo):
            print(f"applied {name}")
        print(f"schema up to date (version {(await schema_status(conninfo)).current})")

    return await schema_command(settings, upgrade)


async def db_status_command(settings: Settings) -> int:
    """`db status`: print the schema version and pending migrations (exit 0 either way)."""

    async def status(conninfo: str) -> None:
        found = await schema_status(conninfo)
        if found.up_to_date:
            print(f"schema up to date (version {found.current})")
            return
        print(f"schema version {found.current} of {found.latest}")
        for name in found.pending:
            print(f"pending {name}")
        print(f"run `python -m {PACKAGE} db upgrade` to apply them")

    return await schema_command(settings, status)


async def db_prune_command(settings: Settings, as_json: bool = False) -> int:
    """`db prune`: delete orphan attachments older than ATTACHMENT_ORPHAN_HOURS and, when
    RETENTION_DAYS is set, expired threads; exit code."""
    hours, days = settings.attachment_orphan_hours, settings.retention_days

    async def prune(conninfo: str) -> int:
        orphans = await prune_orphans(conninfo, hours)
        threads = await prune_expired_threads(conninfo, days) if days else 0
        if as_json:
            counts = {"attachments": orphans, "threads": threads}
            print(json.dumps({"removed": counts, "orphan_hours": hours, "retention_days": days}))
            return 0
        print(f"removed {orphans} unattached attachments older than {hours} hours")
        if days:
            print(f"removed {threads} threads with nothing new for {days} days")
        return 0

    return await admin_command(settings, "prune", "no attachment threads", prune)
