-- +goose Up
-- Telemetry ingest: gateway credentials, the latest value per (vehicle, key),
-- the reading history (partitioned by day of receipt, dropped by partition
-- after the retention period) and the vehicle-event outbox the provider API's
-- push worker consumes.

-- Only the SHA-256 of a gateway's bearer token is stored.
CREATE TABLE ingest_gateways (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    token_hash   BYTEA NOT NULL UNIQUE,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);

-- The newest reading of each key per vehicle. An update only ever moves
-- read_at forward; fillfactor leaves room on each page so those updates stay
-- HOT (no index write).
CREATE TABLE vehicle_latest_values (
    vehicle_id  BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    key_id      SMALLINT NOT NULL REFERENCES catalog_keys(id),
    read_at     TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (vehicle_id, key_id)
) WITH (fillfactor = 70);

-- Every accepted reading. Partitions (vehicle_readings_pYYYYMMDD, one per UTC
-- day of receipt) are created ahead by the ingest's maintenance and dropped
-- whole once older than the retention. No foreign keys: this is the
-- append-only hot path, and rows are only ever written by the ingest with ids
-- it has just resolved.
CREATE TABLE vehicle_readings (
    vehicle_id  BIGINT NOT NULL,
    read_at     TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    key_id      SMALLINT NOT NULL,
    value       TEXT NOT NULL
) PARTITION BY RANGE (received_at);
CREATE INDEX vehicle_readings_vehicle_idx ON vehicle_readings (vehicle_id, read_at);

-- Outbox of vehicle events for pushable keys, written in the same
-- transaction as the readings. A consumer claims pending rows with
-- FOR UPDATE SKIP LOCKED and sets processed_at.
CREATE TABLE vehicle_events (
    id           BIGSERIAL PRIMARY KEY,
    vehicle_id   BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    key_id       SMALLINT NOT NULL,
    event_type   TEXT NOT NULL,
    value        TEXT NOT NULL,
    read_at      TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at TIMESTAMPTZ
);
CREATE INDEX vehicle_events_pending_idx ON vehicle_events (id) WHERE processed_at IS NULL;
CREATE INDEX vehicle_events_vehicle_idx ON vehicle_events (vehicle_id, read_at);
CREATE INDEX vehicle_events_created_idx ON vehicle_events (created_at);

-- +goose Down
DROP TABLE vehicle_events;
DROP TABLE vehicle_readings;
DROP TABLE vehicle_latest_values;
DROP TABLE ingest_gateways;
