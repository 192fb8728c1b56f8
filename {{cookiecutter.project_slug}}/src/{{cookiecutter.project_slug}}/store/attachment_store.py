"""Attachments kept in PostgreSQL: metadata, mime types, and the signed links that upload and
serve their bytes (docs/design_decisions.md, "Attachments")."""

from __future__ import annotations

import functools
import hashlib
import re
import time

import jwt
from chatkit.store import AttachmentStore
from chatkit.types import (
    Attachment,
    AttachmentCreateParams,
    AttachmentUploadDescriptor,
    FileAttachment,
    ImageAttachment,
)
from fastapi import Request
from pydantic import AnyUrl

from ..context import (
    AuthError,
    RequestContext,
    User,
)
from ..errors import AppError
from ..settings import Settings
from .postgres import PostgresStore

UPLOAD_TOKEN_TTL_SECONDS = 3600
MAX_LINK_STEP_SECONDS = 3600  # links expire on whole steps: the same link for a while
OCTET_STREAM = "application/octet-stream"
MAX_MIME_TYPE_LENGTH = 255
MAX_ATTACHMENT_NAME_CHARS = 255
"""Longest attachment name (file name) accepted: every later model request repeats it."""
# RFC 2045 `type/subtype` (token characters only: ASCII letters, digits and `!#$&^_.+-`).
_MIME_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+", re.ASCII)
PACKAGE = __name__.split(".")[0]


class AttachmentTooLarge(AppError):
    """The attachment is over MAX_ATTACHMENT_BYTES (413)."""

    status = 413
    code = "too_large"


class InvalidMimeType(AppError):
    """`mime_type` is not a `type/subtype` media type (400)."""

    code = "invalid_mime_type"


def clean_mime_type(value: str) -> str:
    """`type/subtype` in lower case, parameters dropped; InvalidMimeType unless printable
    ASCII of at most 255 characters starting with an RFC 2045 token pair."""
    essence = value.partition(";")[0].strip(" ")
    if (
        len(value) > MAX_MIME_TYPE_LENGTH
        or not value.isascii()
        or not value.isprintable()
        or not _MIME_TYPE.fullmatch(essence)
    ):
        raise InvalidMimeType(
            "mime_type must be a media type such as 'image/png' (ASCII type/subtype)"
        )
    return essence.lower()


def safe_mime_type(value: str) -> str:
    """A stored mime type fit to hand out: itself when valid, else application/octet-stream."""
    try:
        return clean_mime_type(value)
    except InvalidMimeType:
        return OCTET_STREAM


@functools.lru_cache(maxsize=8)
def _derive_key(secret: str) -> str:
    return hashlib.sha256(b"attachment-urls:" + secret.encode()).hexdigest()


def _url_key(settings: Settings) -> str:
    return _derive_key(settings.auth_secret.get_secret_value())


def _encode(key: str, user_id: str, attachment_id: str, use: str, exp: int) -> str:
    claims = {"sub": user_id, "att": attachment_id, "use": use, "exp": exp}
    return jwt.encode(claims, key, algorithm="HS256")


@functools.lru_cache(maxsize=4096)
def _signed_link(
    path: str, key: str, user_id: str, attachment_id: str, exp: int, use: str = "content"
) -> AnyUrl:
    # Links repeat (same attachment, user and expiry step): each is signed once.
    return AnyUrl(f"{path}?token={_encode(key, user_id, attachment_id, use, exp)}")


def signed_link(settings: Settings, path: str, user_id: str, object_id: str, use: str) -> AnyUrl:
    """`path?token=...`: a link for one use of one object, valid ATTACHMENT_LINK_TTL_SECONDS
    (plus at most a step); `verify_url_token(settings, token, object_id, use)` reads it."""
    exp = link_expiry(settings.attachment_link_ttl_seconds)
    return _signed_link(path, _url_key(settings), user_id, object_id, exp, use)


def sign_url_token(settings: Settings, user_id: str, attachment_id: str, use: str, ttl: int) -> str:
    """A token for one use ("upload" or "content") of one attachment, valid `ttl` seconds."""
    return _encode(_url_key(settings), user_id, attachment_id, use, int(time.time()) + ttl)


def link_expiry(ttl: int, now: float | None = None) -> int:
    """When a preview token made now expires: `ttl` seconds on, rounded up to a whole step."""
    step = max(1, min(MAX_LINK_STEP_SECONDS, ttl // 24))
    now = time.time() if now is None else now
    return (int(now) + ttl) // step * step + step


def verify_url_token(settings: Settings, token: str, attachment_id: str, use: str) -> User:
    """The user a URL token speaks for, if it was made for this attachment and use."""
    try:
        claims = jwt.decode(
            token, _url_key(settings), algorithms=["HS256"], options={"require": ["exp"]}
        )
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


def preview_url(
    settings: Settings, context: RequestContext, attachment_id: str, stored: str | None = None
) -> AnyUrl:
    """A preview link valid ATTACHMENT_LINK_TTL_SECONDS (plus at most a step)."""
    route = f"attachments/{attachment_id}/content"
    return fresh_link(settings, context, route, attachment_id, "content", stored)


def fresh_link(
    settings: Settings,
    context: RequestContext,
    route: str,
    object_id: str,
    use: str,
    stored: str | None = None,
) -> AnyUrl:
    """A newly signed link to `route` for one use of one object; without a request (or
    PUBLIC_URL) it keeps `stored`'s address and only gets a fresh token."""
    try:
        path = f"{base_url(context.request, settings)}{route}"
    except ValueError:
        if stored is None:
            raise
        path = stored.partition("?")[0]
    return signed_link(settings, path, context.user.id, object_id, use)


def build_attachment(
    settings: Settings,
    context: RequestContext,
    attachment_id: str,
    name: str,
    mime_type: str,
    upload: AttachmentUploadDescriptor | None = None,
) -> Attachment:
    """Attachment metadata; images get a preview URL that serves their bytes.

    AppError (400) for a name over MAX_ATTACHMENT_NAME_CHARS."""
    if len(name) > MAX_ATTACHMENT_NAME_CHARS:
        raise AppError(
            f"attachment name over {MAX_ATTACHMENT_NAME_CHARS} characters", code="name_too_long"
        )
    if not mime_type.startswith("image/"):
        return FileAttachment(
            id=attachment_id, name=name, mime_type=mime_type, upload_descriptor=upload
        )
    return ImageAttachment(
        id=attachment_id,
        name=name,
        mime_type=mime_type,
        upload_descriptor=upload,
        preview_url=preview_url(settings, context, attachment_id),
    )


class PostgresAttachmentStore(AttachmentStore[RequestContext]):
    """Creates attachment records for two-phase uploads; `prepare` makes stored ones fit to
    hand out (create_app passes `prepare_attachment` to the store)."""

    def __init__(self, store: PostgresStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def prepare(self, attachment: Attachment, context: RequestContext) -> None:
        prepare_attachment(self.settings, attachment, context)

    async def create_attachment(
        self, input: AttachmentCreateParams, context: RequestContext
    ) -> Attachment:
        # Browsers report "" for a file type they do not know.
        mime_type = clean_mime_type(input.mime_type) if input.mime_type else OCTET_STREAM
        if input.size > self.settings.max_attachment_bytes:
            raise AttachmentTooLarge(f"attachment over {self.settings.max_attachment_bytes} bytes")
        attachment_id = self.generate_attachment_id(mime_type, context)
        token = sign_url_token(
            self.settings, context.user.id, attachment_id, "upload", UPLOAD_TOKEN_TTL_SECONDS
        )
        root = base_url(context.request, self.settings)
        upload = AttachmentUploadDescriptor(
            url=AnyUrl(f"{root}attachments/{attachment_id}/upload?token={token}"),
            method="POST",
        )
        return build_attachment(
            self.settings, context, attachment_id, input.name, mime_type, upload
        )

    async def delete_attachment(self, attachment_id: str, context: RequestContext) -> None:
        """Nothing to do here: deleting the metadata (the SDK does it next) deletes the bytes."""


def prepare_attachment(settings: Settings, attachment: Attachment, context: RequestContext) -> None:
    """An attachment as it leaves the store: a safe MIME type, a fresh preview link."""
    if not _MIME_TYPE.fullmatch(attachment.mime_type):
        attachment.mime_type = safe_mime_type(attachment.mime_type)
    if isinstance(attachment, ImageAttachment):
        attachment.preview_url = preview_url(
            settings, context, attachment.id, str(attachment.preview_url)
        )
