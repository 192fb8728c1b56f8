"""An upload streamed into the bucket as it arrives: a failure aborts the multipart upload and
gives the key's claim back, so a refused or abandoned upload leaves no object behind."""

from __future__ import annotations

from chatkit.store import NotFoundError
from chatkit.types import Attachment
from starlette.requests import Request

from ..context import RequestContext
from ..store.attachment_store import (
    OCTET_STREAM,
    PostgresAttachmentStore,
    build_attachment,
    clean_mime_type,
)
from ..store.blob_storage import (
    CLAIM_OBJECT,
    SET_SIZE,
    UNCLAIM_OBJECT,
    attachment_key,
    disposition,
    drain_quietly,
)
from ..store.postgres import AttachmentContentExists
from .uploads import UploadStream


async def receive_into_bucket(
    attachments: PostgresAttachmentStore,
    request: Request,
    context: RequestContext,
    attachment: Attachment | None,
) -> Attachment:
    """Stream the request's file into the bucket: a new attachment (direct upload) or the
    bytes of `attachment` (two-phase); the attachment, saved, with no upload left to do."""
    store, settings, direct = attachments.store, attachments.settings, attachment is None
    assert store.blobs is not None
    stream = UploadStream(request, settings.max_attachment_bytes)
    found = await stream.start()
    if attachment is None:
        mime = clean_mime_type(found.content_type) if found.content_type else OCTET_STREAM
        attachment_id = attachments.generate_attachment_id(mime, context)
        name = found.filename or "file"
        attachment = build_attachment(settings, context, attachment_id, name, mime)
        await store.save_attachment(attachment, context)
    else:
        attachment.upload_descriptor = None
    key = attachment_key(attachment.id)
    params = {"id": attachment.id, "user": context.user.id, "key": key}
    if not await store.execute(CLAIM_OBJECT, params):
        raise AttachmentContentExists
    try:
        size = await store.blobs.put_stream(
            key, stream.chunks(), attachment.mime_type, disposition(attachment.mime_type)
        )
    except BaseException:
        # No object was made (the multipart upload is aborted); the claim's key is queued.
        await store.execute(UNCLAIM_OBJECT, params)
        if direct:  # nobody holds its id: no row either
            await store.delete_attachment(attachment.id, context)
        await drain_quietly(store.blobs, store.open_pool)
        raise
    if not await store.execute(SET_SIZE, params | {"size": size}):
        await store.blobs.delete([key])  # deleted meanwhile: its object goes too
        raise NotFoundError(f"attachment {attachment.id} not found")
    await store.save_attachment(attachment, context)
    attachments.prepare(attachment, context)  # its preview: a link to the bucket
    return attachment
