-- +goose Up
-- The customer portal (/my): customer sign-in and the data-report archives.
-- account_id refers to customer_accounts, created by migration 00040 after
-- this one, hence no foreign key (see 00036).

-- A customer's password, when one is set (customer accounts come from the
-- manufacturer's identity system; the demo sets passwords).
CREATE TABLE customer_credentials (
    account_id    BIGINT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ
);

CREATE TABLE customer_login_attempts (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    succeeded   BOOLEAN NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX customer_login_attempts_email_idx ON customer_login_attempts (lower(email), at);
CREATE INDEX customer_login_attempts_addr_idx ON customer_login_attempts (client_addr, at);

-- Data reports (right of access): built in the background when the account
-- is large, kept for 7 days, then deleted by the clean-up job.
CREATE TABLE data_reports (
    id             BIGSERIAL PRIMARY KEY,
    account_id     BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending','building','ready','failed')),
    requested_by   TEXT NOT NULL,  -- the customer, or the staff member acting on their request
    requested_kind TEXT NOT NULL,
    vehicles       INT NOT NULL DEFAULT 0,
    filename       TEXT NOT NULL DEFAULT '',
    size_bytes     BIGINT NOT NULL DEFAULT 0,
    sha256         TEXT NOT NULL DEFAULT '',
    data           BYTEA,
    error          TEXT NOT NULL DEFAULT '',
    attempts       INT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    ready_at       TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX data_reports_account_idx ON data_reports (account_id, id);
CREATE INDEX data_reports_pending_idx ON data_reports (id) WHERE status IN ('pending','building');
CREATE INDEX data_reports_expires_idx ON data_reports (expires_at);

-- +goose Down
DROP TABLE data_reports;
DROP TABLE customer_login_attempts;
DROP TABLE customer_credentials;
