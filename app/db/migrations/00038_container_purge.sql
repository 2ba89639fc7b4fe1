-- +goose Up
-- Purge of withdrawn data containers (onboarding/containers, job
-- containers.purge-withdrawn): when a version was withdrawn, and when the
-- container was purged.
--
-- withdrawn_at is set by the withdraw transition; versions withdrawn before
-- this migration take the time of their withdraw event (else their last
-- change, which for a withdrawn version is the withdrawal).
ALTER TABLE container_versions ADD COLUMN withdrawn_at TIMESTAMPTZ;
UPDATE container_versions v SET withdrawn_at = COALESCE(
    (SELECT max(e.at) FROM container_events e WHERE e.version_id = v.id AND e.to_state = 'withdrawn'), v.updated_at)
WHERE v.state = 'withdrawn';
ALTER TABLE container_versions ADD CONSTRAINT container_versions_withdrawn_at_check
    CHECK (state <> 'withdrawn' OR withdrawn_at IS NOT NULL);
CREATE INDEX container_versions_withdrawn_idx ON container_versions (withdrawn_at) WHERE state = 'withdrawn';

-- purged_at: the container has disappeared from its provider's lists and
-- API (404 container_not_found); staff still see it. Its versions, keys and
-- ended consents stay: the delivery ledger and invoices (kept 10 years,
-- § 147 AO) and the customers' transaction reports refer to them.
ALTER TABLE containers ADD COLUMN purged_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE containers DROP COLUMN purged_at;
DROP INDEX container_versions_withdrawn_idx;
ALTER TABLE container_versions DROP CONSTRAINT container_versions_withdrawn_at_check;
ALTER TABLE container_versions DROP COLUMN withdrawn_at;
