-- A second image provider (OpenAI's Images API) next to Replicate and the embedded renderer: each
-- generation records which provider and model made it, and so does each image and video it made.
ALTER TABLE generations DROP CONSTRAINT generations_provider_check;
ALTER TABLE generations ADD CONSTRAINT generations_provider_check CHECK (provider IN ('local', 'replicate', 'openai'));
ALTER TABLE generations ADD COLUMN model text;
ALTER TABLE images ADD COLUMN provider text;
ALTER TABLE videos ADD COLUMN provider text;
UPDATE images i SET provider = g.provider FROM generations g WHERE i.generation_id = g.id;
UPDATE videos v SET provider = g.provider FROM generations g WHERE v.generation_id = g.id;
UPDATE generations g SET model = i.model FROM images i WHERE i.generation_id = g.id AND g.model IS NULL;
UPDATE generations g SET model = v.model FROM videos v WHERE v.generation_id = g.id AND g.model IS NULL;

-- Completion webhooks for API clients: where to tell a program that its generation ended. The signing
-- secret is derived from APP_SECRET, the user and this version (never stored); rotating bumps the
-- version, and for a day deliveries are signed with the previous secret too.
ALTER TABLE generations ADD COLUMN webhook_url text;
ALTER TABLE users ADD COLUMN webhook_secret_version integer NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN webhook_secret_rotated_at timestamptz;

-- One message per generation that ended with a webhook URL; attempted by maintenance-cron (and at once
-- after the generation ends) with exponential back-off until a 2xx or 24 hours of attempts.
CREATE TABLE completion_webhooks (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation_id    uuid NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    url              text NOT NULL,
    event            text NOT NULL,
    -- The body exactly as first sent: every attempt (and a redelivery) sends the same bytes and webhook-id.
    payload          text,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    -- The claim of the attempt in flight: its result is written only while the claim is still this one.
    lease            uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
CREATE INDEX completion_webhooks_due_idx ON completion_webhooks (next_attempt_at) WHERE status = 'pending';
CREATE INDEX completion_webhooks_user_idx ON completion_webhooks (user_id, created_at DESC);
CREATE INDEX completion_webhooks_generation_idx ON completion_webhooks (generation_id);

-- Whatever path ends a generation (webhook, reconciler, timeout, the embedded renderer, an admin), the
-- message is queued in the same transaction as the status change: none is lost, none is sent twice.
CREATE FUNCTION queue_completion_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO completion_webhooks (user_id, generation_id, url, event)
    VALUES (NEW.user_id, NEW.id, NEW.webhook_url, 'generation.' || NEW.status);
    RETURN NEW;
END
$$;
CREATE TRIGGER generations_completion_webhook
    AFTER UPDATE OF status ON generations FOR EACH ROW
    WHEN (NEW.webhook_url IS NOT NULL AND OLD.status IN ('queued', 'running') AND NEW.status IN ('succeeded', 'failed', 'canceled'))
    EXECUTE FUNCTION queue_completion_webhook();
