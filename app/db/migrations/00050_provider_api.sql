-- +goose Up
-- Provider API: OAuth access tokens, idempotency keys, and push
-- notifications (webhook endpoints, events, one delivery per event and
-- endpoint, and every attempt made).

-- Opaque bearer tokens issued by POST /oauth/token. Only the SHA-256 is
-- stored. Revocation of the client or suspension of the provider is checked
-- when the token is resolved (a join), so a token never outlives either.
CREATE TABLE api_access_tokens (
    token_hash  BYTEA PRIMARY KEY,
    client_id   BIGINT NOT NULL REFERENCES api_clients(id) ON DELETE CASCADE,
    provider_id BIGINT NOT NULL REFERENCES providers(id),
    scope       TEXT NOT NULL DEFAULT '',
    issued_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX api_access_tokens_expiry_idx ON api_access_tokens (expires_at);
CREATE INDEX api_access_tokens_client_idx ON api_access_tokens (client_id);

-- Idempotency-Key on POST: the first request's answer, kept for replay.
-- status is NULL while the first request is still running.
CREATE TABLE api_idempotency_keys (
    client_id     BIGINT NOT NULL REFERENCES api_clients(id) ON DELETE CASCADE,
    key           TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  BYTEA NOT NULL,
    status        INT,
    content_type  TEXT NOT NULL DEFAULT '',
    location      TEXT NOT NULL DEFAULT '',
    response_body BYTEA,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, key)
);
CREATE INDEX api_idempotency_keys_created_idx ON api_idempotency_keys (created_at);

-- A provider's push endpoint. The signing secret must be kept in clear
-- (HMAC needs it); it is shown to the provider, never logged.
CREATE TABLE webhook_endpoints (
    id                   BIGSERIAL PRIMARY KEY,
    provider_id          BIGINT NOT NULL REFERENCES providers(id),
    url                  TEXT NOT NULL CHECK (length(url) <= 2000),
    description          TEXT NOT NULL DEFAULT '',
    event_types          TEXT[] NOT NULL CHECK (cardinality(event_types) > 0),
    secret               TEXT NOT NULL CHECK (secret LIKE 'whsec_%'),
    status               TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','disabled','deleted')),
    status_reason        TEXT NOT NULL DEFAULT '',
    consecutive_failures INT NOT NULL DEFAULT 0,
    failing_since        TIMESTAMPTZ,
    last_success_at      TIMESTAMPTZ,
    created_by           TEXT NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_provider_idx ON webhook_endpoints (provider_id) WHERE status <> 'deleted';

-- One event for one provider. id is the stable webhook-id every attempt
-- carries. Data-carrying events name the consent they flow under;
-- source_event_id (the ingest's vehicle_events.id) makes the fan-out of a
-- vehicle event idempotent.
CREATE TABLE webhook_events (
    id                TEXT PRIMARY KEY,
    provider_id       BIGINT NOT NULL REFERENCES providers(id),
    type              TEXT NOT NULL,
    vin               TEXT NOT NULL DEFAULT '',
    container_id      BIGINT NOT NULL DEFAULT 0,
    container_version INT NOT NULL DEFAULT 0,
    consent_id        BIGINT NOT NULL DEFAULT 0,
    keys_count        INT NOT NULL DEFAULT 0 CHECK (keys_count >= 0),
    source_event_id   BIGINT,
    payload           JSONB NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX webhook_events_source_key ON webhook_events (provider_id, consent_id, source_event_id)
    WHERE source_event_id IS NOT NULL;
CREATE INDEX webhook_events_provider_idx ON webhook_events (provider_id, created_at DESC);

-- The delivery of one event to one endpoint. A replica claims due rows
-- (FOR UPDATE SKIP LOCKED) and leases them (lease_until, lease_token): no
-- other replica takes a leased row until the lease has run out, which only
-- happens after a crash, so a message is sent twice only then.
CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    event_id         TEXT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id      BIGINT NOT NULL REFERENCES webhook_endpoints(id),
    provider_id      BIGINT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','succeeded','dead','dropped')),
    status_reason    TEXT NOT NULL DEFAULT '',
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    give_up_at       TIMESTAMPTZ NOT NULL,           -- a failure after this dead-letters the delivery
    lease_until      TIMESTAMPTZ,
    lease_token      TEXT,
    last_status_code INT,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_provider_idx ON webhook_deliveries (provider_id, status, id DESC);

-- Every HTTP attempt, for the provider's and staff's views.
CREATE TABLE webhook_attempts (
    id          BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INT NOT NULL,
    manual      BOOLEAN NOT NULL DEFAULT FALSE,
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms INT NOT NULL DEFAULT 0,
    status_code INT,
    error       TEXT NOT NULL DEFAULT '',
    response    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
DROP TABLE api_idempotency_keys;
DROP TABLE api_access_tokens;
