-- Images the model generated (IMAGE_GENERATION=true): their bytes, never base64 inside the
-- `generated_image` item's JSON, whose URL is a signed link to them (store/images.py). One
-- row per image, overwritten by each partial image until the final one. An image belongs to
-- its thread and its user, and is deleted with the thread.

CREATE TABLE generated_images (
    id          text PRIMARY KEY,
    thread_id   text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    mime_type   text NOT NULL,
    content     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The cascade from threads finds a thread's images by this index.
CREATE INDEX generated_images_thread_idx ON generated_images (thread_id);
