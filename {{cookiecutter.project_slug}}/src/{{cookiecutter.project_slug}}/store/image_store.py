"""Generated images: their bytes in table `generated_images` (deleted with their thread), served
as `GET /images/{id}?token=...`, signed like attachment links for one image and one user, and
re-signed whenever the store hands the item out."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from chatkit.store import NotFoundError
from chatkit.types import GeneratedImageItem

from ..context import RequestContext
from ..settings import Settings
from .attachment_store import fresh_link
from .postgres import PostgresStore

IMAGE_USE = "image"
_OUR_PATH = re.compile(r"/images/(img_[0-9a-f]{32})$")

# Only into a thread the user owns; a partial image is overwritten by the next one.
SAVE_IMAGE = """
INSERT INTO generated_images AS g (id, thread_id, user_id, mime_type, content)
SELECT %(id)s, t.id, t.user_id, %(mime)s, %(content)s
FROM threads AS t
WHERE t.id = %(thread)s AND t.user_id = %(user)s
ON CONFLICT (id) DO UPDATE
SET content = EXCLUDED.content, mime_type = EXCLUDED.mime_type, updated_at = now()
WHERE g.user_id = EXCLUDED.user_id AND g.thread_id = EXCLUDED.thread_id
RETURNING 1
"""

LOAD_IMAGE = """
SELECT mime_type, content FROM generated_images WHERE id = %(id)s AND user_id = %(user)s
"""

# As LOAD_ATTACHMENT_CONTENTS (postgres.py): every size, and the bytes of the longest prefix
# of the list whose sizes add up to at most the budget.
LOAD_IMAGE_CONTENTS = """
SELECT w.id, octet_length(g.content),
       CASE WHEN sum(octet_length(g.content)) OVER (ORDER BY w.ord) <= %(budget)s
            THEN g.content END
FROM unnest(%(ids)s::text[]) WITH ORDINALITY AS w(id, ord)
JOIN generated_images AS g ON g.id = w.id AND g.user_id = %(user)s
"""


def new_image_id() -> str:
    return f"img_{uuid.uuid4().hex}"


def image_id_in(url: str) -> str | None:
    """Our image id in a URL this module made, else None (a data: URL, someone else's)."""
    match = _OUR_PATH.search(url.partition("?")[0])
    return match.group(1) if match else None


def image_mime_type(content: bytes) -> str:
    """The type of a generated image from its first bytes (the API makes PNG, JPEG or WebP)."""
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


class GeneratedImageStore:
    """Reads and writes generated images on the store's pool, and makes their links."""

    def __init__(self, store: PostgresStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def url(self, context: RequestContext, image_id: str, stored: str | None = None) -> str:
        return image_url(self.settings, context, image_id, stored)

    def prepare(self, item: GeneratedImageItem, context: RequestContext) -> None:
        prepare_image(self.settings, item, context)

    async def save(
        self, image_id: str, thread_id: str, content: bytes, context: RequestContext
    ) -> None:
        """Store (or overwrite) the image's bytes in the user's thread (NotFoundError else)."""
        params = {
            "id": image_id,
            "thread": thread_id,
            "user": context.user.id,
            "mime": image_mime_type(content),
            "content": content,
        }
        if not await self.store.execute(SAVE_IMAGE, params):
            raise NotFoundError(f"thread {thread_id} not found")

    async def load(self, image_id: str, context: RequestContext) -> tuple[str, bytes]:
        """The user's image: its mime type and bytes (NotFoundError when missing or foreign)."""
        rows = await self.store.execute(LOAD_IMAGE, {"id": image_id, "user": context.user.id})
        if not rows:
            raise NotFoundError(f"image {image_id} not found")
        return str(rows[0][0]), bytes(rows[0][1])

    async def load_image_contents(
        self, image_ids: Sequence[str], budget: int, context: RequestContext
    ) -> dict[str, tuple[int, bytes | None]]:
        """Size and bytes (while the sizes in list order fit `budget`, else None) of each of
        the user's images among `image_ids` (one statement)."""
        if not image_ids:
            return {}
        params = {"ids": list(image_ids), "budget": budget, "user": context.user.id}
        rows = await self.store.execute(LOAD_IMAGE_CONTENTS, params)
        return {
            row[0]: (int(row[1]), bytes(row[2]) if row[2] is not None else None) for row in rows
        }


def image_url(
    settings: Settings, context: RequestContext, image_id: str, stored: str | None = None
) -> str:
    """A fresh signed link to the image (attachment_store.fresh_link)."""
    return str(fresh_link(settings, context, f"images/{image_id}", image_id, IMAGE_USE, stored))


def prepare_image(settings: Settings, item: GeneratedImageItem, context: RequestContext) -> None:
    """Re-sign the item's link (in place) when it is one of ours, as it leaves the store."""
    if item.image is not None and (image_id := image_id_in(item.image.url)):
        item.image.url = image_url(settings, context, image_id, item.image.url)
