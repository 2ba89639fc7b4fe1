-- +goose Up
-- Customer consent (policies/consent): one row per (customer, vehicle,
-- provider, container version) request, with its changelog.
--
-- vehicle_id and account_id point at vehicles and customer_accounts, which
-- migration 00040 creates after this one; so they carry no foreign key here
-- (goose runs versions in order on a fresh database). The consent service
-- only ever writes ids it has just read from those tables.
CREATE TABLE consents (
    id                   BIGSERIAL PRIMARY KEY,
    provider_id          BIGINT NOT NULL REFERENCES providers(id),
    container_id         BIGINT NOT NULL REFERENCES containers(id),
    container_version_id BIGINT NOT NULL REFERENCES container_versions(id),
    vehicle_id           BIGINT NOT NULL,
    vin                  TEXT NOT NULL,
    account_id           BIGINT NOT NULL, -- the vehicle's primary holder when asked: the only one who decides
    state                TEXT NOT NULL CHECK (state IN ('requested','granted','denied','revoked','expired','superseded')),
    ends_at              TIMESTAMPTZ,     -- optional end of a granted consent
    requested_by         TEXT NOT NULL,
    requested_at         TIMESTAMPTZ NOT NULL,
    decided_at           TIMESTAMPTZ,
    ended_at             TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL
);
-- One open request or grant per vehicle and container version, and one
-- grant per vehicle and container (a grant of a newer version supersedes).
CREATE UNIQUE INDEX consents_one_live_per_version ON consents (vehicle_id, container_version_id) WHERE state IN ('requested','granted');
CREATE UNIQUE INDEX consents_one_granted_per_container ON consents (vehicle_id, container_id) WHERE state = 'granted';
-- The decision's lookup (provider, container, vehicle) on every API read.
CREATE INDEX consents_lookup_idx ON consents (provider_id, container_id, vehicle_id);
CREATE INDEX consents_provider_vin_idx ON consents (provider_id, vin, id);
CREATE INDEX consents_account_idx ON consents (account_id, state);
CREATE INDEX consents_version_idx ON consents (container_version_id, state);
CREATE INDEX consents_open_requests_idx ON consents (requested_at) WHERE state = 'requested';
CREATE INDEX consents_ending_idx ON consents (ends_at) WHERE state = 'granted' AND ends_at IS NOT NULL;

-- The changelog: every state a consent took, when, and who moved it.
CREATE TABLE consent_changes (
    id           BIGSERIAL PRIMARY KEY,
    consent_id   BIGINT NOT NULL REFERENCES consents(id),
    at           TIMESTAMPTZ NOT NULL,
    from_state   TEXT NOT NULL DEFAULT '',
    to_state     TEXT NOT NULL,
    version      INT NOT NULL,    -- the container version the consent referred to after the change
    actor_kind   TEXT NOT NULL,   -- customer, provider, staff, system
    actor_id     BIGINT,
    actor_label  TEXT NOT NULL,
    note         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX consent_changes_consent_idx ON consent_changes (consent_id, id);

-- +goose Down
DROP TABLE consent_changes;
DROP TABLE consents;
