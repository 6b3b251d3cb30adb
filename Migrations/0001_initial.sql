-- The seed's tables: accounts, the images and videos they keep, and API usage per day.
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email               citext NOT NULL UNIQUE,
    username            citext UNIQUE,
    password_hash       text NOT NULL,
    verified            boolean NOT NULL DEFAULT false,
    is_admin            boolean NOT NULL DEFAULT false,
    -- Premium is active while premium_until is in the future (a subscription or an admin grant).
    premium_until       timestamptz,
    -- The current quota period: its start, what it has used, and an optional per-user limit.
    quota_period_start  timestamptz NOT NULL DEFAULT now(),
    quota_used          integer NOT NULL DEFAULT 0 CHECK (quota_used >= 0),
    quota_override      integer CHECK (quota_override >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz,
    CHECK (username IS NULL OR username ~ '^[a-z0-9_.-]{3,32}$')
);
CREATE INDEX users_created_at_idx ON users (created_at DESC, id DESC);

CREATE TABLE images (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    storage_key         text,
    thumbnail_key       text,
    prompt              text NOT NULL DEFAULT '',
    style               text,
    colour              text,
    kind                text NOT NULL DEFAULT 'generated' CHECK (kind IN ('generated', 'upscaled', 'inpainted')),
    source_image_id     uuid REFERENCES images (id) ON DELETE SET NULL,
    width               integer,
    height              integer,
    model               text,
    seed                bigint,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz
);
CREATE INDEX images_user_created_idx ON images (user_id, created_at DESC, id DESC);

CREATE TABLE videos (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    storage_key         text,
    poster_key          text,
    prompt              text NOT NULL DEFAULT '',
    style               text,
    width               integer,
    height              integer,
    duration_seconds    real,
    model               text,
    seed                bigint,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz
);
CREATE INDEX videos_user_created_idx ON videos (user_id, created_at DESC, id DESC);

-- API calls per user, per key (NULL: browser session) and per day.
CREATE TABLE api_usage (
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id          uuid,
    day                 date NOT NULL,
    count               bigint NOT NULL DEFAULT 0 CHECK (count >= 0)
);
CREATE UNIQUE INDEX api_usage_user_key_day_idx
    ON api_usage (user_id, COALESCE(api_key_id, '00000000-0000-0000-0000-000000000000'::uuid), day);
