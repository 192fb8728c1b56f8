-- Limits, round 2 (limits.py).
--
-- buckets: one token bucket per kind of request (`messages`, `actions`, ...),
-- `{"<kind>": {"allowance": <float>, "at": <epoch seconds>}}`; the `allowance` and
-- `checked_at` columns of 0005 (the messages bucket of earlier versions) are no longer read.
-- reserved: `{"<lease id>": <tokens>}`, what each running turn that runs the model holds of
-- the daily budget until it ends (dropped with its lease when that expires).
-- turn_tokens: the user's estimate of one turn (the larger of their last turn and half the
-- estimate before it), which each new turn reserves.

ALTER TABLE user_limits
    ADD COLUMN buckets jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN reserved jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN turn_tokens double precision NOT NULL DEFAULT 0;
