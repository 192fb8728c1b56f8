"""Attachment routes: direct and two-phase uploads, the content link (store/attachment_store.py)."""

from __future__ import annotations

from typing import Annotated

from chatkit.types import Attachment
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response

from ..context import RequestContext, get_request_context, get_user
from ..store.attachment_store import (
    OCTET_STREAM,
    PostgresAttachmentStore,
    build_attachment,
    clean_mime_type,
    safe_mime_type,
    verify_url_token,
)
from ..store.postgres import AttachmentContentExists
from .uploads import read_upload


def attachment_json(attachment: Attachment) -> Response:
    body = attachment.model_dump_json(exclude_none=True, context={"exclude_metadata": True})
    return Response(body, media_type="application/json")


def install_attachment_routes(app: FastAPI, attachments: PostgresAttachmentStore) -> None:
    """Add the upload and download endpoints for attachments to the app."""
    store, settings = attachments.store, attachments.settings
    router = APIRouter(prefix="/attachments")
    limit = settings.max_attachment_bytes

    @router.post("", response_model=None)
    async def direct_upload(
        request: Request, context: Annotated[RequestContext, Depends(get_request_context)]
    ) -> Response:
        """Direct upload strategy: store the file and return its attachment."""
        upload = await read_upload(request, limit)
        mime_type = clean_mime_type(upload.content_type) if upload.content_type else OCTET_STREAM
        attachment_id = attachments.generate_attachment_id(mime_type, context)
        name = upload.filename or "file"
        attachment = build_attachment(settings, context, attachment_id, name, mime_type)
        await store.save_attachment(attachment, context)
        await store.save_attachment_content(attachment_id, upload.data, context)
        return attachment_json(attachment)

    @router.post("/{attachment_id}/upload", response_model=None)
    async def two_phase_upload(
        attachment_id: str, request: Request, token: Annotated[str, Query()] = ""
    ) -> Response:
        """Two-phase upload strategy: receive the bytes for an attachment created earlier."""
        user = verify_url_token(settings, token, attachment_id, "upload")
        context = RequestContext(request=request, user=user)
        attachment = await store.load_attachment(attachment_id, context)
        if attachment.upload_descriptor is None:
            raise AttachmentContentExists
        upload = await read_upload(request, limit)
        await store.save_attachment_content(attachment_id, upload.data, context)
        attachment.upload_descriptor = None
        await store.save_attachment(attachment, context)
        return attachment_json(attachment)

    @router.get("/{attachment_id}/content", response_model=None)
    async def content(
        attachment_id: str, request: Request, token: Annotated[str, Query()] = ""
    ) -> Response:
        """The attachment's bytes, for its owner (bearer token) or a preview link."""
        if token:
            user = verify_url_token(settings, token, attachment_id, "content")
        else:
            user = await get_user(request)
        context = RequestContext(request=request, user=user)
        attachment = await store.load_attachment(attachment_id, context)
        data = await store.load_attachment_content(attachment_id, context)
        mime_type = safe_mime_type(attachment.mime_type)
        headers = {
            "Content-Disposition": "inline" if mime_type.startswith("image/") else "attachment",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=3600",
        }
        return Response(data, media_type=mime_type, headers=headers)

    app.include_router(router)
