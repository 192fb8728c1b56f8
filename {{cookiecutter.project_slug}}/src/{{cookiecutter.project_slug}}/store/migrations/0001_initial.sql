-- ChatKit store: threads, thread items and attachment metadata.
--
-- Payloads are the SDK's own pydantic models serialised as JSONB, so new SDK fields
-- round-trip without a schema change. The other columns exist for scoping (user_id),
-- lookups (primary keys) and ordering: created_at plus seq, a deterministic tie-break
-- for rows with equal timestamps, so keyset pagination never skips or repeats a row.

CREATE TABLE threads (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    created_at  timestamptz NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    payload     jsonb NOT NULL
);

-- load_threads: one user's threads, newest or oldest first, keyset by (created_at, seq).
CREATE INDEX threads_user_created_idx ON threads (user_id, created_at, seq);

-- Items belong to a thread; ownership is checked through the thread row.
-- Item ids are unique within a thread (the SDK's default ids are short and random).
CREATE TABLE thread_items (
    thread_id   text NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    id          text NOT NULL,
    created_at  timestamptz NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    payload     jsonb NOT NULL,
    PRIMARY KEY (thread_id, id)
);

-- load_thread_items: a thread's items in order, keyset by (created_at, seq).
CREATE INDEX thread_items_thread_created_idx ON thread_items (thread_id, created_at, seq);

CREATE TABLE attachments (
    id          text PRIMARY KEY,
    user_id     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    payload     jsonb NOT NULL
);
