-- Every admin action (dashboard or operator CLI): who, what, on whom, what it was and became.
CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    actor_id        uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_label     text NOT NULL,
    action          text NOT NULL,
    target_user_id  uuid,
    target_email    text,
    before          jsonb,
    after           jsonb,
    request_id      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC, id DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_user_id, created_at DESC);

-- Trigram-free substring search on email and username stays an index scan for prefix-heavy queries
-- on small tables; pg_trgm can be added when the user count makes it worth it.
CREATE INDEX users_email_lower_idx ON users (lower(email::text) text_pattern_ops);

-- Razorpay subscriptions and the payments they charge.
CREATE TABLE subscriptions (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                 uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    razorpay_subscription_id text NOT NULL UNIQUE,
    plan_id                 text NOT NULL,
    status                  text NOT NULL,
    current_start           timestamptz,
    current_end             timestamptz,
    cancel_at_cycle_end     boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_user_idx ON subscriptions (user_id, created_at DESC);

CREATE TABLE payments (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                 uuid REFERENCES users (id) ON DELETE SET NULL,
    subscription_id         uuid REFERENCES subscriptions (id) ON DELETE SET NULL,
    razorpay_payment_id     text NOT NULL UNIQUE,
    amount                  bigint NOT NULL,
    currency                text NOT NULL,
    status                  text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);
