-- Each sign-up keeps its own password (and username) with its own code, so a second sign-up for an
-- address that is still unverified changes nothing until one of the codes is entered: the code proves the
-- mailbox and selects whose credentials the account takes. Several verify codes may be live for one
-- address; a reset code still replaces the previous one.
ALTER TABLE email_codes DROP CONSTRAINT email_codes_pkey;
ALTER TABLE email_codes ADD COLUMN id bigserial PRIMARY KEY;
ALTER TABLE email_codes ADD COLUMN password_hash text;
ALTER TABLE email_codes ADD COLUMN username citext;
CREATE INDEX email_codes_email_purpose_idx ON email_codes (email, purpose, created_at DESC);
