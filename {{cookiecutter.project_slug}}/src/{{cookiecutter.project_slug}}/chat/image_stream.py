"""Images the model generates, stored in PostgreSQL as they stream (store/image_store.py); the item
gets a signed link, never megabytes of base64. Each partial image overwrites the row and gets a
link of its own (`&partial=N`)."""

from __future__ import annotations

import base64

from chatkit.agents import ResponseStreamConverter
from chatkit.types import ThreadMetadata

from ..context import RequestContext
from ..store.image_store import GeneratedImageStore, new_image_id


class ImageStreamConverter(ResponseStreamConverter):
    """The stream converter for a turn that may generate images (IMAGE_GENERATION=true)."""

    def __init__(
        self,
        images: GeneratedImageStore,
        thread: ThreadMetadata,
        context: RequestContext,
        partial_images: int | None = None,
    ) -> None:
        super().__init__(partial_images=partial_images)
        self.images = images
        self.thread = thread
        self.context = context
        self._ids: dict[str, str] = {}
        """Our image id for each image generation call of the turn (the model's id)."""

    async def base64_image_to_url(
        self, image_id: str, base64_image: str, partial_image_index: int | None = None
    ) -> str:
        ours = self._ids.setdefault(image_id, new_image_id())
        content = base64.b64decode(base64_image)
        await self.images.save(ours, self.thread.id, content, self.context)
        url = self.images.url(self.context, ours)
        return url if partial_image_index is None else f"{url}&partial={partial_image_index}"
