-- +goose Up
-- A vehicle event is one thing that happened at one reading time (issue 17):
-- a position update is latitude, longitude, heading and altitude read
-- together, not one event per key. The outbox and its dead letters carry the
-- event's keys and their values as two arrays in the same order (like
-- vehicle_snapshots), one row per vehicle, reading time and event type.
-- Rows written before this migration were one key each; they stay single
-- events (arrays of one), nothing is merged after the fact.
ALTER TABLE vehicle_events ADD COLUMN key_ids SMALLINT[], ADD COLUMN key_values TEXT[];
UPDATE vehicle_events SET key_ids = ARRAY[key_id], key_values = ARRAY[value];
ALTER TABLE vehicle_events ALTER COLUMN key_ids SET NOT NULL, ALTER COLUMN key_values SET NOT NULL,
    DROP COLUMN key_id, DROP COLUMN value,
    ADD CONSTRAINT vehicle_events_keys_check CHECK (cardinality(key_ids) > 0 AND cardinality(key_ids) = cardinality(key_values));

ALTER TABLE vehicle_events_dead ADD COLUMN key_ids SMALLINT[], ADD COLUMN key_values TEXT[];
UPDATE vehicle_events_dead SET key_ids = ARRAY[key_id], key_values = ARRAY[value];
ALTER TABLE vehicle_events_dead ALTER COLUMN key_ids SET NOT NULL, ALTER COLUMN key_values SET NOT NULL,
    DROP COLUMN key_id, DROP COLUMN value,
    ADD CONSTRAINT vehicle_events_dead_keys_check CHECK (cardinality(key_ids) > 0 AND cardinality(key_ids) = cardinality(key_values));

-- +goose Down
-- Back to one row per key: an event's first key keeps its row (and id), each
-- further key becomes a row of its own with a new id.
ALTER TABLE vehicle_events DROP CONSTRAINT vehicle_events_keys_check, ADD COLUMN key_id SMALLINT, ADD COLUMN value TEXT;
INSERT INTO vehicle_events (vehicle_id, event_type, read_at, created_at, key_ids, key_values, key_id, value)
SELECT e.vehicle_id, e.event_type, e.read_at, e.created_at, e.key_ids, e.key_values, k.key_id, k.value
FROM vehicle_events e CROSS JOIN LATERAL unnest(e.key_ids[2:], e.key_values[2:]) AS k(key_id, value)
WHERE e.key_id IS NULL AND cardinality(e.key_ids) > 1;
UPDATE vehicle_events SET key_id = key_ids[1], value = key_values[1] WHERE key_id IS NULL;
ALTER TABLE vehicle_events ALTER COLUMN key_id SET NOT NULL, ALTER COLUMN value SET NOT NULL,
    DROP COLUMN key_ids, DROP COLUMN key_values;

ALTER TABLE vehicle_events_dead DROP CONSTRAINT vehicle_events_dead_keys_check, ADD COLUMN key_id SMALLINT, ADD COLUMN value TEXT;
INSERT INTO vehicle_events_dead (id, vehicle_id, event_type, read_at, created_at, error, failed_at, retries, key_ids, key_values, key_id, value)
SELECT nextval('vehicle_events_id_seq'), d.vehicle_id, d.event_type, d.read_at, d.created_at, d.error, d.failed_at, d.retries,
    d.key_ids, d.key_values, k.key_id, k.value
FROM vehicle_events_dead d CROSS JOIN LATERAL unnest(d.key_ids[2:], d.key_values[2:]) AS k(key_id, value)
WHERE d.key_id IS NULL AND cardinality(d.key_ids) > 1;
UPDATE vehicle_events_dead SET key_id = key_ids[1], value = key_values[1] WHERE key_id IS NULL;
ALTER TABLE vehicle_events_dead ALTER COLUMN key_id SET NOT NULL, ALTER COLUMN value SET NOT NULL,
    DROP COLUMN key_ids, DROP COLUMN key_values;
