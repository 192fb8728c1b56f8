-- The bytes of uploaded attachments, beside their metadata (attachments.payload).
-- Deleting the attachment's metadata deletes its bytes.

CREATE TABLE attachment_contents (
    attachment_id  text PRIMARY KEY REFERENCES attachments (id) ON DELETE CASCADE,
    content        bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
