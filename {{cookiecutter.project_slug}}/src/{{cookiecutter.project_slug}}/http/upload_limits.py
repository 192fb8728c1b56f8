"""Uploads bounded: uploads per minute, uploads running per user and bytes kept per user (all
in PostgreSQL), and bytes this instance receives at once (docs/design_decisions.md, "Uploads")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request

from ..errors import AppError
from ..ops.limits import admit
from ..ops.rates import too_many
from ..ops.usage import Meter
from ..settings import Settings
from ..store.postgres import PostgresStore
from ..store.upload_leases import (
    UPLOAD_LEASE_SECONDS,
    release_upload,
    renew_upload,
    take_upload,
)
from .request_types import uploads
from .uploads import MULTIPART_OVERHEAD_BYTES

logger = logging.getLogger(__name__)

INSTANCE_RETRY_SECONDS = 2  # what a refusal for this instance's byte cap asks clients to wait
MAX_RETRY_SECONDS = 5
"""Leases are renewed while an upload runs, so their expiry overstates the wait."""


class QuotaExceeded(AppError):
    """The user keeps USER_STORAGE_BYTES already (413)."""

    status = 413
    code = "storage_quota_exceeded"


class UploadLimits:
    """One per app: the instance's bytes being received, and the per-user checks."""

    def __init__(self, store: PostgresStore, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.receiving = 0  # bytes reserved by the uploads this instance receives now

    async def count_upload(self, user_id: str) -> None:
        """Spend one of the user's RATE_LIMIT_UPLOADS_PER_MINUTE (429 beyond): the bucket of
        attachments.create's row, as a direct upload is one without it."""
        await admit(None, uploads(self.settings), self.store, user_id, Meter())

    def reserve_size(self, request: Request) -> int:
        """What an upload may bring: its declared length, else the most it may be."""
        declared = request.headers.get("content-length", "")
        most = self.settings.max_attachment_bytes + MULTIPART_OVERHEAD_BYTES
        return min(int(declared), most) if declared.isdigit() else most

    @contextlib.asynccontextmanager
    async def slot(self, request: Request, user_id: str) -> AsyncIterator[None]:
        """Hold one upload slot of the user and `reserve_size` bytes of this instance while
        the body is received; 503 (instance), 429 (user's uploads) or 413 (quota) beyond."""
        size = self.reserve_size(request)
        cap = self.settings.max_upload_bytes_in_flight
        if cap and self.receiving and self.receiving + size > cap:
            raise AppError(
                "this server is receiving too many uploads at once; try again shortly",
                status=503,
                code="uploads_busy",
                headers={"Retry-After": str(INSTANCE_RETRY_SECONDS)},
                retry_after=INSTANCE_RETRY_SECONDS,
            )
        self.receiving += size
        try:
            async with self._lease(user_id, size):
                yield
        finally:
            self.receiving -= size

    @contextlib.asynccontextmanager
    async def _lease(self, user_id: str, size: int) -> AsyncIterator[None]:
        settings = self.settings
        most, quota = settings.max_uploads_in_flight_per_user, settings.user_storage_bytes
        if not (most or quota):
            yield
            return
        # The body's length: the file and a few hundred bytes of multipart wrapping.
        reserved = size
        lease = uuid.uuid4().hex
        params = {
            "user": user_id,
            "lease": lease,
            "lease_seconds": UPLOAD_LEASE_SECONDS,
            "max_uploads": most,
            "quota": quota,
            "bytes": reserved,
        }
        granted, running, stored, soonest = await take_upload(self.store, params)
        if not granted:
            if quota and (not most or running < most):
                raise QuotaExceeded(
                    f"storage quota reached: {stored:,} of {quota:,} bytes kept "
                    f"(this upload may bring {reserved:,}); delete attachments or threads first"
                )
            raise too_many(
                f"too many uploads at once: at most {most}",
                "too_many_uploads",
                min(math.ceil(soonest or 1), MAX_RETRY_SECONDS),
            )
        renewing = asyncio.create_task(self._renew(user_id, lease))
        try:
            yield
        finally:
            renewing.cancel()
            try:
                await release_upload(self.store, user_id, lease)
            except (psycopg.Error, PoolTimeout) as exc:  # the lease lapses on its own
                logger.debug("could not release an upload lease: %s", type(exc).__name__)

    async def _renew(self, user_id: str, lease: str) -> None:
        while True:
            await asyncio.sleep(UPLOAD_LEASE_SECONDS / 3)
            try:
                await renew_upload(self.store, user_id, lease)
            except (psycopg.Error, PoolTimeout) as exc:
                logger.debug("could not renew an upload lease: %s", type(exc).__name__)
