-- Attachments belong to the thread they were sent in (the SDK saves them with its id):
-- deleting the thread deletes them, and their bytes with them (attachment_contents
-- cascades from attachments). An attachment never sent keeps thread_id NULL: an orphan,
-- deleted by `db prune` once it is older than ATTACHMENT_ORPHAN_HOURS.

ALTER TABLE attachments
    ADD COLUMN thread_id text REFERENCES threads (id) ON DELETE CASCADE;

-- Attachments already sent: the thread their payload names, if the same user owns it.
UPDATE attachments AS a
SET thread_id = t.id
FROM threads AS t
WHERE t.id = a.payload ->> 'thread_id' AND t.user_id = a.user_id;

-- The cascade from threads finds a thread's attachments by this index.
CREATE INDEX attachments_thread_idx ON attachments (thread_id) WHERE thread_id IS NOT NULL;

-- `db prune`: the orphans, oldest first.
CREATE INDEX attachments_orphans_idx ON attachments (created_at) WHERE thread_id IS NULL;
