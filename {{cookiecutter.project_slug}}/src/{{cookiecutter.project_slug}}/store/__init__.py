"""Storage in PostgreSQL: threads, items, attachments, the pool and the migrations."""

from .postgres import PostgresStore

__all__ = ["PostgresStore"]
