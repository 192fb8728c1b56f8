-- Feedback on thread items (ChatKit `items.feedback`): one row per user and item.
--
-- Giving feedback again replaces the kind (the latest wins) and moves updated_at;
-- created_at keeps the first time. A row goes with its item, and so with its thread
-- (thread_items cascades from threads). Only the thread's owner can give feedback on
-- its items; user_id is kept beside the keys for the export and for scoping.

CREATE TABLE feedback (
    thread_id   text NOT NULL,
    item_id     text NOT NULL,
    user_id     text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('positive', 'negative')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- (thread_id, item_id) first: the index the cascade from thread_items looks rows up by.
    PRIMARY KEY (thread_id, item_id, user_id),
    FOREIGN KEY (thread_id, item_id) REFERENCES thread_items (thread_id, id) ON DELETE CASCADE
);

-- `feedback export [--since T]`: every row changed since T, oldest change first, keys as
-- the tie-break: one index scan, already in output order.
CREATE INDEX feedback_updated_idx ON feedback (updated_at, thread_id, item_id, user_id);
