-- +goose Up
-- Sandbox deliveries (billing): the transfers to sandbox clients and
-- sandbox webhook endpoints, recorded like the delivery ledger's records so
-- the provider can page through them, but in a table of their own. The
-- invoice run, reconcile, the coverage figures and the customers' reports
-- read delivery_ledger only, so a sandbox transfer can never be billed or
-- shown to a real customer.
CREATE TABLE sandbox_deliveries (
    id                BIGSERIAL PRIMARY KEY,
    provider_id       BIGINT NOT NULL,
    client_id         BIGINT,
    vin               TEXT NOT NULL,
    container_id      BIGINT NOT NULL,
    container_version INT NOT NULL,
    consent_id        BIGINT NOT NULL,
    kind              TEXT NOT NULL CHECK (kind IN ('pull','push')),
    keys_delivered    INT NOT NULL CHECK (keys_delivered > 0),
    key_ids           SMALLINT[] NOT NULL,
    event_id          TEXT,
    event_type        TEXT,
    bytes             BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    request_id        TEXT NOT NULL CHECK (request_id <> ''),
    delivered_at      TIMESTAMPTZ NOT NULL,
    recorded_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sandbox_deliveries_request_key ON sandbox_deliveries (provider_id, kind, request_id);
CREATE INDEX sandbox_deliveries_provider_idx ON sandbox_deliveries (provider_id, delivered_at);

-- +goose Down
DROP TABLE sandbox_deliveries;
