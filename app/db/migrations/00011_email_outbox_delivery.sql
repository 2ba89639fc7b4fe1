-- +goose Up
-- Delivery bookkeeping for the e-mail outbox worker (jobs.Outbox).
-- status 'local': SMTP is not configured (development, `make run`), so the
-- e-mail was delivered to the local outbox only and never left the machine.
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_status_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_status_check
    CHECK (status IN ('pending','sent','failed','local'));
ALTER TABLE email_outbox ADD COLUMN sent_via TEXT NOT NULL DEFAULT '';  -- 'smtp host:port' or 'local'
CREATE INDEX email_outbox_list_idx ON email_outbox (status, id DESC);

-- +goose Down
DROP INDEX email_outbox_list_idx;
ALTER TABLE email_outbox DROP COLUMN sent_via;
UPDATE email_outbox SET status = 'sent' WHERE status = 'local';
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_status_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_status_check
    CHECK (status IN ('pending','sent','failed'));
