"""`GET /images/{id}?token=...`: a generated image, for the holder of its signed link."""

from __future__ import annotations

from typing import Annotated

from chatkit.store import NotFoundError
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response

from ..context import AuthError, RequestContext
from ..errors import error_response
from ..store.attachment_store import verify_url_token
from ..store.image_store import IMAGE_USE, GeneratedImageStore


def install_image_routes(app: FastAPI, images: GeneratedImageStore) -> None:
    """Serve generated images by their signed links (a bad or expired link: 401)."""
    router = APIRouter(prefix="/images")

    @router.get("/{image_id}", response_model=None)
    async def image(
        image_id: str, request: Request, token: Annotated[str, Query()] = ""
    ) -> Response:
        try:
            user = verify_url_token(images.settings, token, image_id, IMAGE_USE)
        except AuthError as exc:
            return error_response(401, "unauthorized", str(exc))
        try:
            mime_type, content = await images.load(image_id, RequestContext(request, user))
        except NotFoundError:
            return error_response(404, "not_found", "no such image")
        headers = {
            "Content-Disposition": "inline",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
            "Cache-Control": "private, max-age=3600",
        }
        return Response(content, media_type=mime_type, headers=headers)

    app.include_router(router)
