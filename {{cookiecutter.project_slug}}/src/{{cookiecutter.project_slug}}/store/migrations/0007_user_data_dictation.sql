-- Dictation is metered (usage.py); one user's rows are found by index (ops/user_data.py).
--
-- usage.audio_bytes: the recording's size for a transcription (purpose 'transcription'; its
-- thread_id is NULL, dictation belongs to no thread), NULL for the other model calls.

ALTER TABLE usage ADD COLUMN audio_bytes bigint;

-- `users export` and `users delete` find one user's rows by these (threads has its own);
-- without them each would read the whole table.
CREATE INDEX usage_user_idx ON usage (user_id, created_at);
CREATE INDEX attachments_user_idx ON attachments (user_id, created_at);
CREATE INDEX feedback_user_idx ON feedback (user_id);
