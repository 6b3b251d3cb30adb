-- Emailed one-time codes: at most one live code per email and purpose, stored only as an HMAC.
CREATE TABLE email_codes (
    email       citext NOT NULL,
    purpose     text NOT NULL CHECK (purpose IN ('verify', 'reset')),
    code_hmac   text NOT NULL,
    expires_at  timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email, purpose)
);
CREATE INDEX email_codes_expires_idx ON email_codes (expires_at);
