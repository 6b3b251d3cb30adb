-- Every delivery to /hooks/replicate and /hooks/razorpay with its outcome (accepted, duplicate, or why it
-- was refused), for the admins' webhook log. maintenance-cron keeps a week, and at most 10,000 rows.
CREATE TABLE webhook_deliveries (
    id           bigserial PRIMARY KEY,
    provider     text NOT NULL CHECK (provider IN ('replicate', 'razorpay')),
    outcome      text NOT NULL,
    status       integer NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_provider_idx ON webhook_deliveries (provider, received_at DESC);
