-- A provider job that Replicate kept throttling past the request's patience waits here for
-- maintenance-cron to start it: the model and the input to send. A 429 means nothing was created, so
-- sending it later cannot make a second billed prediction.
ALTER TABLE generations ADD COLUMN deferred_start jsonb;
