-- Dictation is metered and limited (usage.py, limits.py).
--
-- usage.audio_bytes: the recording's size for a transcription (purpose 'transcription'; its
-- thread_id is NULL, dictation belongs to no thread), NULL for the other model calls.

ALTER TABLE usage ADD COLUMN audio_bytes bigint;

-- rate_buckets: per-user token buckets for limits other than messages (bucket
-- 'transcriptions': RATE_LIMIT_TRANSCRIPTIONS_PER_MINUTE). One row per user and bucket,
-- `allowance` requests left as of `checked_at`, refilled evenly up to a minute's worth.
-- UNLOGGED like user_limits: no disk flush on the request's path; a crash refills them.

CREATE UNLOGGED TABLE rate_buckets (
    user_id     text NOT NULL,
    bucket      text NOT NULL,
    allowance   double precision NOT NULL,
    checked_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, bucket)
);

-- `users export` and `users delete` find one user's rows by these (threads has its own);
-- without them each would read the whole table.
CREATE INDEX usage_user_idx ON usage (user_id, created_at);
CREATE INDEX attachments_user_idx ON attachments (user_id, created_at);
CREATE INDEX feedback_user_idx ON feedback (user_id);
