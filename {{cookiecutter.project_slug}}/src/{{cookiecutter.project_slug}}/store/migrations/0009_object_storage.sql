-- Attachment and generated image bytes in object storage (ATTACHMENT_STORAGE=s3://...), and
-- the upload limits (store/blob_storage.py, store/upload_leases.py).
--
-- object_key: where the bytes are in the bucket (NULL: in PostgreSQL, or not uploaded yet).
-- size: the bytes' length, for the storage quota and the model's input budget.
ALTER TABLE attachments
    ADD COLUMN object_key text,
    ADD COLUMN size bigint;

UPDATE attachments AS a SET size = octet_length(c.content)
FROM attachment_contents AS c WHERE c.attachment_id = a.id;
-- The quota sums a user's sizes (by attachments_user_idx of 0007).

ALTER TABLE generated_images
    ADD COLUMN object_key text,
    ADD COLUMN size bigint,
    ALTER COLUMN content DROP NOT NULL;

UPDATE generated_images SET size = octet_length(content);

-- Objects whose row is gone, to delete from the bucket: filled by the triggers below whatever
-- deleted the row (a thread's cascade, `users delete`, `db prune`), emptied once the objects
-- are deleted. A crash in between leaves the key here, for the next delete or `db prune`.
CREATE TABLE object_deletions (
    object_key  text PRIMARY KEY,
    queued_at   timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION queue_object_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO object_deletions (object_key) VALUES (OLD.object_key)
    ON CONFLICT (object_key) DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER attachments_object_deleted
    AFTER DELETE ON attachments
    FOR EACH ROW WHEN (OLD.object_key IS NOT NULL)
    EXECUTE FUNCTION queue_object_deletion();

CREATE TRIGGER generated_images_object_deleted
    AFTER DELETE ON generated_images
    FOR EACH ROW WHEN (OLD.object_key IS NOT NULL)
    EXECUTE FUNCTION queue_object_deletion();

-- The uploads each user is sending: `{"<lease id>": [<expiry epoch>, <bytes reserved>]}`.
ALTER TABLE user_limits
    ADD COLUMN uploads jsonb NOT NULL DEFAULT '{}';

-- A partial image replaced, or bytes moved back to PostgreSQL: the old object goes too.
CREATE TRIGGER attachments_object_replaced
    AFTER UPDATE OF object_key ON attachments
    FOR EACH ROW WHEN (OLD.object_key IS NOT NULL AND OLD.object_key IS DISTINCT FROM NEW.object_key)
    EXECUTE FUNCTION queue_object_deletion();

CREATE TRIGGER generated_images_object_replaced
    AFTER UPDATE OF object_key ON generated_images
    FOR EACH ROW WHEN (OLD.object_key IS NOT NULL AND OLD.object_key IS DISTINCT FROM NEW.object_key)
    EXECUTE FUNCTION queue_object_deletion();

-- The sweep asks which listed objects still have a row.
CREATE UNIQUE INDEX attachments_object_key_idx ON attachments (object_key)
    WHERE object_key IS NOT NULL;
CREATE UNIQUE INDEX generated_images_object_key_idx ON generated_images (object_key)
    WHERE object_key IS NOT NULL;
