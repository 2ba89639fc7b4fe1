-- +goose Up
-- A second factor for local accounts (policies/totp): time-based one-time
-- codes (RFC 6238) and recovery codes. Keyed by the session's subject
-- (kind, id), so staff and provider users can share it.

-- One authenticator per account. The secret is sealed under SECRETS_KEY
-- ("sealed:" + base64 of AES-256-GCM, webhooks.SealBytes); only without a
-- key (development on a loopback address) is it kept as "clear:" + secret.
-- confirmed_at is NULL while the enrolment waits for its first valid code.
-- last_step is the time step of the last code accepted: a code of that step
-- or an earlier one is refused, so a code cannot be used twice.
CREATE TABLE second_factors (
    subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('staff','provider')),
    subject_id    BIGINT NOT NULL,
    secret        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at  TIMESTAMPTZ,
    last_step     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (subject_kind, subject_id)
);

-- Recovery codes, shown once, stored as bcrypt hashes; each usable once.
CREATE TABLE recovery_codes (
    id            BIGSERIAL PRIMARY KEY,
    subject_kind  TEXT NOT NULL,
    subject_id    BIGINT NOT NULL,
    code_hash     TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at       TIMESTAMPTZ
);
CREATE INDEX recovery_codes_subject_idx ON recovery_codes (subject_kind, subject_id) WHERE used_at IS NULL;

-- Failed codes, throttled like passwords (policies/signin); email holds
-- the account key (kind:id).
CREATE TABLE second_factor_attempts (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    succeeded   BOOLEAN NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX second_factor_attempts_email_idx ON second_factor_attempts (lower(email), at);
CREATE INDEX second_factor_attempts_addr_idx ON second_factor_attempts (client_addr, at);

-- A session between the password and the second factor: 'code' waits for
-- a code, 'enrol' for the enrolment its role requires. Such a session
-- carries no principal: no page but the second step is reachable.
ALTER TABLE sessions ADD COLUMN pending TEXT NOT NULL DEFAULT ''
    CHECK (pending IN ('', 'code', 'enrol'));

-- +goose Down
ALTER TABLE sessions DROP COLUMN pending;
DROP TABLE second_factor_attempts;
DROP TABLE recovery_codes;
DROP TABLE second_factors;
