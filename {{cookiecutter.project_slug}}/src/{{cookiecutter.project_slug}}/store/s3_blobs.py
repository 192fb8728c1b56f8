"""Bytes in an S3-compatible bucket through obstore (the `s3` extra): streamed multipart
uploads, presigned GET links, ranged reads (docs/design_decisions.md, "Object storage")."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import obstore
from obstore.store import S3Store

if TYPE_CHECKING:  # a TypedDict of the stubs only
    from obstore.store import S3Config

PART_BYTES = 5 * 1024 * 1024
"""S3's smallest part (but the last): an upload holds about one part while sending another."""
PARTS_IN_FLIGHT = 1


class S3Blobs:
    """One bucket and prefix; keys given to the methods are relative to the prefix."""

    def __init__(
        self, bucket: str, prefix: str, endpoint_url: str | None, region: str | None
    ) -> None:
        self.bucket, self.prefix = bucket, prefix
        config: S3Config = {}
        if endpoint_url:
            config["endpoint"] = endpoint_url
        if region:
            config["region"] = region
        # Credentials: the AWS variables, web identity, ECS roles, instance metadata (obstore).
        self.store = S3Store(
            bucket,
            prefix=prefix or None,
            config=config,
            client_options={
                "allow_http": bool(endpoint_url and endpoint_url.startswith("http:")),
                "connect_timeout": "5s",
                "timeout": "120s",  # one request: a part, a read, a delete
            },
            # Not obstore's default of ten retries over 3 minutes: a service down fails fast.
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=20)},
        )

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str, disposition: str
    ) -> int:
        """Send `chunks` as they come (multipart beyond one part); their total. An exception
        from `chunks` aborts the multipart upload: no object, no parts left behind."""
        total = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal total
            async for chunk in chunks:
                total += len(chunk)
                yield chunk

        await obstore.put_async(
            self.store,
            key,
            counted(),
            attributes={"Content-Type": content_type, "Content-Disposition": disposition},
            chunk_size=PART_BYTES,
            max_concurrency=PARTS_IN_FLIGHT,
        )
        return total

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await obstore.put_async(self.store, key, data, attributes={"Content-Type": content_type})

    async def get(self, key: str) -> bytes:
        result = await obstore.get_async(self.store, key)
        return bytes(await result.bytes_async())

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self.store, key)
        except FileNotFoundError:
            return False
        return True

    async def delete(self, keys: list[str]) -> None:
        """Delete the objects (a missing one is no error)."""
        if keys:
            await obstore.delete_async(self.store, keys)

    def presign(self, key: str, seconds: int) -> str:
        """A GET link to the object, valid `seconds` (signed locally: no request made)."""
        return obstore.sign(self.store, "GET", key, timedelta(seconds=seconds))

    async def older_than(self, folder: str, age: timedelta) -> AsyncIterator[list[str]]:
        """The keys under `folder` last written more than `age` ago, a page at a time."""
        cutoff = datetime.now(UTC) - age
        async for page in obstore.list(self.store, folder):
            yield [meta["path"] for meta in page if meta["last_modified"] < cutoff]

    async def check(self) -> None:
        """Write, read and delete one object under the prefix; raises what went wrong."""
        key = f"check/{uuid.uuid4().hex}"
        await obstore.put_async(self.store, key, b"ok")
        if await self.get(key) != b"ok":
            raise RuntimeError("read back different bytes")
        await obstore.delete_async(self.store, key)
