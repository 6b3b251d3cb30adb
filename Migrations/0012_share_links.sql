-- Share links: one image or video made public under an unguessable, revocable address (/s/<token>).
-- The token is not stored: it is the link's id with a MAC of it under APP_SECRET (ShareLinks.swift), so the
-- owner can copy the link again while the table holds nothing a visitor could use. Views are a bare count:
-- nothing about visitors is kept. Deleting the item or its owner deletes the link.
CREATE TABLE share_links (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    image_id       uuid REFERENCES images (id) ON DELETE CASCADE,
    video_id       uuid REFERENCES videos (id) ON DELETE CASCADE,
    show_username  boolean NOT NULL DEFAULT false,
    views          bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    CHECK ((image_id IS NULL) <> (video_id IS NULL))
);
-- At most one live link per item (sharing again answers the live one).
CREATE UNIQUE INDEX share_links_live_image ON share_links (image_id) WHERE revoked_at IS NULL AND image_id IS NOT NULL;
CREATE UNIQUE INDEX share_links_live_video ON share_links (video_id) WHERE revoked_at IS NULL AND video_id IS NOT NULL;
CREATE INDEX share_links_user ON share_links (user_id, created_at DESC);
