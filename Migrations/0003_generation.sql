-- One row per provider job: its state machine, what it was asked, and the quota it reserved.
CREATE TABLE generations (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    task                text NOT NULL CHECK (task IN ('image', 'upscale', 'inpaint', 'video')),
    provider            text NOT NULL CHECK (provider IN ('local', 'replicate')),
    provider_id         text UNIQUE,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    input               jsonb NOT NULL,
    error               text,
    -- The reservation: units charged to the quota period that started at quota_period_start.
    cost                integer NOT NULL CHECK (cost >= 0),
    quota_period_start  timestamptz NOT NULL,
    refunded            boolean NOT NULL DEFAULT false,
    -- Provider outputs waiting to be copied into our storage, and how often copying failed.
    pending_outputs     jsonb,
    copy_attempts       integer NOT NULL DEFAULT 0,
    source_image_id     uuid REFERENCES images (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX generations_user_created_idx ON generations (user_id, created_at DESC);
CREATE INDEX generations_open_idx ON generations (created_at) WHERE status IN ('queued', 'running');

-- Uploads kept as the source of a transform are gallery images too.
ALTER TABLE images DROP CONSTRAINT images_kind_check;
ALTER TABLE images ADD CONSTRAINT images_kind_check CHECK (kind IN ('generated', 'upscaled', 'inpainted', 'uploaded'));

ALTER TABLE images ADD COLUMN generation_id uuid REFERENCES generations (id) ON DELETE SET NULL;
ALTER TABLE videos ADD COLUMN colour text;
ALTER TABLE videos ADD COLUMN generation_id uuid REFERENCES generations (id) ON DELETE SET NULL;
CREATE INDEX images_generation_idx ON images (generation_id);
CREATE INDEX videos_generation_idx ON videos (generation_id);
CREATE INDEX images_user_kind_created_idx ON images (user_id, kind, created_at DESC, id DESC);

-- Webhook deliveries already handled, kept: a redelivery of the same id changes nothing.
CREATE TABLE webhook_events (
    provider    text NOT NULL,
    event_id    text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);
