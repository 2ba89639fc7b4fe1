-- +goose Up
-- Data reports the builder could not build are dead letters: kept (not
-- purged with the expired archives) with their error and the time they
-- failed, listed for staff on the customer requests pages until retried.
ALTER TABLE data_reports ADD COLUMN failed_at TIMESTAMPTZ;
UPDATE data_reports SET failed_at = coalesce(started_at, created_at) WHERE status = 'failed';
CREATE INDEX data_reports_failed_idx ON data_reports (failed_at DESC, id DESC) WHERE status = 'failed';

-- +goose Down
DROP INDEX data_reports_failed_idx;
ALTER TABLE data_reports DROP COLUMN failed_at;
