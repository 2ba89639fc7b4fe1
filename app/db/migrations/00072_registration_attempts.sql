-- +goose Up
-- Public registrations per client address (onboarding.Service.Apply): the
-- hourly rate limit counts the rows of the last hour, the daily upload cap
-- sums upload_bytes of the last 24 hours. Shared by all replicas; rows older
-- than a day are removed by the registrations themselves.
CREATE TABLE registration_attempts (
    id           BIGSERIAL PRIMARY KEY,
    client_addr  TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    upload_bytes BIGINT NOT NULL DEFAULT 0 CHECK (upload_bytes >= 0)
);
CREATE INDEX registration_attempts_addr_idx ON registration_attempts (client_addr, at);
CREATE INDEX registration_attempts_at_idx ON registration_attempts (at);

-- +goose Down
DROP TABLE registration_attempts;
