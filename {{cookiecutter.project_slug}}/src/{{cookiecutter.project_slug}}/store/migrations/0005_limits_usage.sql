-- Per-user limits (limits.py) and model usage (usage.py).
--
-- user_limits: one row per user, changed by one statement per streamed turn. `allowance` is
-- a token bucket for messages (refilled at RATE_LIMIT_MESSAGES_PER_MINUTE / 60 per second, up
-- to a minute's worth; `checked_at` is when it was last brought up to date). `leases` holds the
-- user's running streams, `{"<lease id>": <expiry, epoch seconds>}`: a lease is removed when
-- its stream ends and ignored once expired, so an instance that dies mid-stream leaks nothing
-- for longer than a lease's lifetime. One row keeps the check atomic across instances: the
-- upsert locks it, and sees the latest leases and allowance even under concurrency.
-- UNLOGGED: changing it writes no WAL, so the check's commit waits for no disk flush (it is
-- on every turn's path). After a database crash (or on a replica promoted by a failover) the
-- table starts empty: buckets full and no leases, which costs nothing worth keeping.

CREATE UNLOGGED TABLE user_limits (
    user_id     text PRIMARY KEY,
    allowance   double precision NOT NULL,
    checked_at  timestamptz NOT NULL,
    leases      jsonb NOT NULL DEFAULT '{}'
);

-- usage: one row per model call (the answer's calls, and the title's), written when the turn
-- ends together with the lease's release. `turn_id` (the lease id) and `call` make the row's
-- key, so writing a turn again (a retried statement) adds nothing.

CREATE TABLE usage (
    turn_id        text NOT NULL,
    call           integer NOT NULL,
    user_id        text NOT NULL,
    thread_id      text,
    model          text NOT NULL,
    purpose        text NOT NULL,
    input_tokens   bigint NOT NULL,
    output_tokens  bigint NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (turn_id, call)
);

-- `usage report --since T`: the rows since T, in one index range scan.
CREATE INDEX usage_created_idx ON usage (created_at);

-- daily_usage: tokens per user per UTC day, added to in the statement that writes `usage`;
-- the daily token budget (USER_DAILY_TOKENS) reads one row of it.

CREATE TABLE daily_usage (
    user_id  text NOT NULL,
    day      date NOT NULL,
    tokens   bigint NOT NULL,
    PRIMARY KEY (user_id, day)
);
