-- One run at a time for each cron function: the run holding a cron's lease, until when. A lease row,
-- not a session advisory lock, so it works through a transaction-pooling PgBouncer (where consecutive
-- statements of one client may run on different server connections); a run that dies leaves a lease that
-- simply expires.
CREATE TABLE cron_leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL
);
