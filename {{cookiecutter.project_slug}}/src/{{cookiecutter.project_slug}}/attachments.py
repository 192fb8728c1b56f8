"""Attachments: files users add to their messages, kept in PostgreSQL.

Both ChatKit upload strategies work:

- two-phase (`uploadStrategy: {type: "two_phase"}`): `attachments.create` on /chatkit returns
  an attachment whose upload URL is `POST /attachments/{id}/upload?token=...`; the client
  posts the file there as multipart field `file`;
- direct (`{type: "direct", uploadUrl: "/attachments"}`): the client posts the file to
  `POST /attachments` with its bearer token and gets the attachment back.

Images get a `preview_url` at `GET /attachments/{id}/content?token=...`. The tokens in these
URLs are signed with a key derived from AUTH_SECRET and name one attachment, one user and one
use, so they open nothing else and never work as bearer tokens. A preview token does not
expire (the URL is stored in the thread); deleting the attachment revokes it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

import jwt
from chatkit.store import AttachmentStore, NotFoundError
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
)
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AnyUrl
from starlette.datastructures import UploadFile

from .context import (
    AuthError,
    RequestContext,
    User,
    bearer_token,
    get_request_context,
    verify_token,
)
from .errors import error_response
from .settings import Settings
from .store import PostgresStore

UPLOAD_TOKEN_TTL_SECONDS = 3600
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class AttachmentTooLarge(ValueError):
    """The attachment is over MAX_ATTACHMENT_BYTES."""


def _url_key(settings: Settings) -> str:
    secret = settings.auth_secret.get_secret_value().encode()
    return hashlib.sha256(b"attachment-urls:" + secret).hexdigest()


def sign_url_token(
    settings: Settings, user_id: str, attachment_id: str, use: str, ttl: int | None = None
) -> str:
    """A token for one use ("upload" or "content") of one attachment of one user."""
    claims: dict[str, Any] = {"sub": user_id, "att": attachment_id, "use": use}
    if ttl is not None:
        claims["exp"] = int(time.time()) + ttl
    return jwt.encode(claims, _url_key(settings), algorithm="HS256")


def verify_url_token(settings: Settings, token: str, attachment_id: str, use: str) -> User:
    """The user a URL token speaks for, if it was made for this attachment and use."""
    try:
        claims = jwt.decode(token, _url_key(settings), algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise AuthError("invalid or expired link") from exc
    if claims.get("att") != attachment_id or claims.get("use") != use:
        raise AuthError("link not valid for this attachment")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid link")
    return User(id=subject)


def base_url(request: Request | None, settings: Settings) -> str:
    """Where clients reach this app: PUBLIC_URL when set, else the request's own base URL."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + "/"
    if request is None:
        raise ValueError("attachments need a request (or PUBLIC_URL) to build their URLs")
    return str(request.base_url)


def build_attachment(
    settings: Settings,
    context: RequestContext,
    attachment_id: str,
    name: str,
    mime_type: str,
    upload: AttachmentUploadDescriptor | None = None,
) -> Attachment:
    """Attachment metadata; images get a preview URL that serves their bytes."""
    if not mime_type.startswith("image/"):
        return FileAttachment(
            id=attachment_id, name=name, mime_type=mime_type, upload_descriptor=upload
        )
    token = sign_url_token(settings, context.user.id, attachment_id, "content")
    preview = f"{base_url(context.request, settings)}attachments/{attachment_id}/content"
    return ImageAttachment(
        id=attachment_id,
        name=name,
        mime_type=mime_type,
        upload_descriptor=upload,
        preview_url=AnyUrl(f"{preview}?token={token}"),
    )


class PostgresAttachmentStore(AttachmentStore[RequestContext]):
    """Creates attachment records for two-phase uploads; the bytes live in PostgreSQL."""

    def __init__(self, store: PostgresStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def create_attachment(
        self, input: AttachmentCreateParams, context: RequestContext
    ) -> Attachment:
        """A new attachment whose upload URL accepts the file for the next hour."""
        if input.size > self.settings.max_attachment_bytes:
            raise AttachmentTooLarge(f"attachment over {self.settings.max_attachment_bytes} bytes")
        attachment_id = self.generate_attachment_id(input.mime_type, context)
        token = sign_url_token(
            self.settings, context.user.id, attachment_id, "upload", UPLOAD_TOKEN_TTL_SECONDS
        )
        root = base_url(context.request, self.settings)
        upload = AttachmentUploadDescriptor(
            url=AnyUrl(f"{root}attachments/{attachment_id}/upload?token={token}"),
            method="POST",
        )
        return build_attachment(
            self.settings, context, attachment_id, input.name, input.mime_type, upload
        )

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        """Nothing to do here: deleting the metadata (the SDK does it next) deletes the bytes."""


def attachment_json(attachment: Attachment) -> Response:
    body = attachment.model_dump_json(exclude_none=True, context={"exclude_metadata": True})
    return Response(body, media_type="application/json")


def install_attachment_routes(app: FastAPI, attachments: PostgresAttachmentStore) -> None:
    """Add the upload and download endpoints for attachments to the app."""
    store, settings = attachments.store, attachments.settings
    router = APIRouter(prefix="/attachments")
    limit = settings.max_attachment_bytes

    async def read_file(request: Request) -> UploadFile | JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD_BYTES:
            return error_response(413, "too_large", f"attachment over {limit} bytes")
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception:  # malformed multipart bodies raise several parser errors
            return error_response(
                400, "invalid_request", "expected multipart/form-data with a file"
            )
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return error_response(400, "invalid_request", "expected a multipart field named 'file'")
        if upload.size is not None and upload.size > limit:
            return error_response(413, "too_large", f"attachment over {limit} bytes")
        return upload

    @router.post("", response_model=None)
    async def direct_upload(
        request: Request, context: Annotated[RequestContext, Depends(get_request_context)]
    ) -> Response:
        """Direct upload strategy: store the file and return its attachment."""
        upload = await read_file(request)
        if isinstance(upload, JSONResponse):
            return upload
        mime_type = upload.content_type or "application/octet-stream"
        attachment_id = attachments.generate_attachment_id(mime_type, context)
        name = upload.filename or "file"
        attachment = build_attachment(settings, context, attachment_id, name, mime_type)
        await store.save_attachment(attachment, context)
        await store.save_attachment_content(attachment_id, await upload.read(), context)
        return attachment_json(attachment)

    @router.post("/{attachment_id}/upload", response_model=None)
    async def two_phase_upload(
        attachment_id: str, request: Request, token: Annotated[str, Query()] = ""
    ) -> Response:
        """Two-phase upload strategy: receive the bytes for an attachment created earlier."""
        try:
            user = verify_url_token(settings, token, attachment_id, "upload")
        except AuthError as exc:
            return error_response(401, "unauthorized", str(exc))
        context = RequestContext(request=request, user=user)
        upload = await read_file(request)
        if isinstance(upload, JSONResponse):
            return upload
        try:
            attachment = await store.load_attachment(attachment_id, context)
            await store.save_attachment_content(attachment_id, await upload.read(), context)
        except NotFoundError:
            return error_response(404, "not_found", "no such attachment")
        attachment.upload_descriptor = None
        await store.save_attachment(attachment, context)
        return attachment_json(attachment)

    @router.get("/{attachment_id}/content", response_model=None)
    async def content(
        attachment_id: str, request: Request, token: Annotated[str, Query()] = ""
    ) -> Response:
        """The attachment's bytes, for its owner (bearer token) or a preview link."""
        try:
            if token:
                user = verify_url_token(settings, token, attachment_id, "content")
            else:
                user = verify_token(bearer_token(request), settings)
        except AuthError as exc:
            return error_response(401, "unauthorized", str(exc))
        context = RequestContext(request=request, user=user)
        try:
            attachment = await store.load_attachment(attachment_id, context)
            data = await store.load_attachment_content(attachment_id, context)
        except NotFoundError:
            return error_response(404, "not_found", "no such attachment")
        inline = attachment.mime_type.startswith("image/")
        headers = {
            "Content-Disposition": "inline" if inline else "attachment",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=3600",
        }
        return Response(data, media_type=attachment.mime_type, headers=headers)

    app.include_router(router)
