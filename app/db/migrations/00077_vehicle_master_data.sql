-- +goose Up
-- Vehicle master data: the manufacturer's systems keep the registry current
-- through the machine API under /ingest/v1 (vehicles, connected-service
-- subscriptions, account mappings), authenticated by their own credential;
-- staff (administrators) may change it by hand. Every change leaves a row in
-- the vehicle's master-data history naming its source.

-- A master-data client's bearer token is stored only as its SHA-256.
CREATE TABLE master_data_clients (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    token_hash   BYTEA NOT NULL UNIQUE,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);

-- The manufacturer's own reference of a booking: booking the same reference
-- again changes nothing (the API is idempotent), and it names the booking
-- to end. Bookings made by hand or imported before have none.
ALTER TABLE service_subscriptions ADD COLUMN external_ref TEXT CHECK (external_ref IS NULL OR length(external_ref) BETWEEN 1 AND 100);
CREATE UNIQUE INDEX service_subscriptions_ref_key ON service_subscriptions (vehicle_id, external_ref) WHERE external_ref IS NOT NULL;

CREATE TABLE vehicle_master_data_changes (
    id           BIGSERIAL PRIMARY KEY,
    vehicle_id   BIGINT NOT NULL REFERENCES vehicles (id) ON DELETE CASCADE,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    action       TEXT NOT NULL,           -- vehicle.created, subscription.booked, holders.change_of_owner, ...
    summary      TEXT NOT NULL,
    source_kind  TEXT NOT NULL CHECK (source_kind IN ('api','staff','system')),
    source_id    BIGINT,                  -- master_data_clients.id or staff_users.id
    source_label TEXT NOT NULL            -- the client's name or the staff user's e-mail
);
CREATE INDEX vehicle_master_data_changes_vehicle_idx ON vehicle_master_data_changes (vehicle_id, id DESC);

-- +goose Down
DROP TABLE vehicle_master_data_changes;
DROP INDEX service_subscriptions_ref_key;
ALTER TABLE service_subscriptions DROP COLUMN external_ref;
DROP TABLE master_data_clients;
