-- +goose Up
-- Purpose-bound data containers (onboarding/containers). A container is a
-- provider's named set of telematics keys for one stated purpose; what is
-- reviewed, approved and consented to is a version of it. An approved
-- version never changes: a change is a new version.
CREATE TABLE containers (
    id          BIGSERIAL PRIMARY KEY,
    provider_id BIGINT NOT NULL REFERENCES providers(id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX containers_provider_idx ON containers (provider_id);

CREATE TABLE container_versions (
    id                   BIGSERIAL PRIMARY KEY,
    container_id         BIGINT NOT NULL REFERENCES containers(id),
    provider_id          BIGINT NOT NULL REFERENCES providers(id), -- copied from the container: ownership filters need no join
    version              INT NOT NULL CHECK (version > 0),
    name                 TEXT NOT NULL CHECK (name <> ''),
    purpose              TEXT NOT NULL,
    purpose_code         TEXT NOT NULL,
    purpose_list_version TEXT NOT NULL,            -- the version of the closed purpose list the code is from
    state                TEXT NOT NULL CHECK (state IN ('draft','submitted','approved','rejected','deprecated','withdrawn')),
    state_reason         TEXT NOT NULL DEFAULT '', -- rejection or withdrawal reason
    sensitive            BOOLEAN NOT NULL DEFAULT FALSE, -- any key with location or driving-behaviour data
    approvals_required   SMALLINT NOT NULL DEFAULT 1 CHECK (approvals_required IN (1, 2)),
    based_on             INT,                      -- the version this one was derived from
    created_by           TEXT NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    submitted_at         TIMESTAMPTZ,
    decided_at           TIMESTAMPTZ,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (container_id, version)
);
-- New consents always refer to the one approved version of a container.
CREATE UNIQUE INDEX container_versions_one_approved ON container_versions (container_id) WHERE state = 'approved';
-- At most one version is being prepared or reviewed at a time.
CREATE UNIQUE INDEX container_versions_one_open ON container_versions (container_id) WHERE state IN ('draft','submitted');
CREATE INDEX container_versions_provider_idx ON container_versions (provider_id, state);
CREATE INDEX container_versions_review_idx ON container_versions (state, submitted_at);

CREATE TABLE container_version_keys (
    version_id BIGINT NOT NULL REFERENCES container_versions(id) ON DELETE CASCADE,
    key_id     SMALLINT NOT NULL REFERENCES catalog_keys(id),
    position   SMALLINT NOT NULL,
    PRIMARY KEY (version_id, key_id)
);

-- One row per partner manager approving a version. The primary key is the
-- two-person rule's backstop: nobody approves the same version twice.
CREATE TABLE container_approvals (
    version_id BIGINT NOT NULL REFERENCES container_versions(id) ON DELETE CASCADE,
    staff_id   BIGINT NOT NULL REFERENCES staff_users(id),
    staff_name TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (version_id, staff_id)
);

-- The history of every version: each transition and approval, in order.
CREATE TABLE container_events (
    id          BIGSERIAL PRIMARY KEY,
    version_id  BIGINT NOT NULL REFERENCES container_versions(id) ON DELETE CASCADE,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    action      TEXT NOT NULL,
    from_state  TEXT NOT NULL DEFAULT '',
    to_state    TEXT NOT NULL DEFAULT '',
    actor_kind  TEXT NOT NULL,
    actor_id    BIGINT,
    actor_label TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX container_events_version_idx ON container_events (version_id, id);

-- +goose Down
DROP TABLE container_events;
DROP TABLE container_approvals;
DROP TABLE container_version_keys;
DROP TABLE container_versions;
DROP TABLE containers;
