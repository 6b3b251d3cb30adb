-- The provider's last word on a job (Replicate's prediction status) and when it was heard, for the admins'
-- stuck-job view: "running for 40 minutes, Replicate last said processing 38 minutes ago".
ALTER TABLE generations ADD COLUMN provider_status text;
ALTER TABLE generations ADD COLUMN provider_checked_at timestamptz;
