-- +goose Up
-- Write-path tuning of the ingest, second round (docs/PERFORMANCE.md).
--
-- 1. vehicle_latest_values.changed_at: the reading time since which the value
--    is what it is. The latest-value upsert keeps it (same value) or moves it
--    to the new reading (changed value), so a pushed state key's event is
--    "changed_at = read_at" in the upsert's RETURNING, instead of a second
--    probe of every pushed row for its old value before the upsert.
ALTER TABLE vehicle_latest_values ADD COLUMN changed_at TIMESTAMPTZ;
UPDATE vehicle_latest_values SET changed_at = read_at;
ALTER TABLE vehicle_latest_values ALTER COLUMN changed_at SET NOT NULL;

-- 2. The history stores one row per vehicle, reading time and request (a
--    snapshot: the keys read at one moment, with their values in the same
--    order) instead of one row per reading: a vehicle sends 10-13 keys at a
--    time, and the row overhead (header, tuple routing, BRIN upkeep) was paid
--    per key. Partitioned by UTC day of receipt as before
--    (vehicle_snapshots_pYYYYMMDD), dropped whole after the retention. The view
--    vehicle_readings gives the old one-row-per-reading shape to readers.
CREATE TABLE vehicle_snapshots (
    vehicle_id  BIGINT NOT NULL,
    read_at     TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    key_ids     SMALLINT[] NOT NULL,
    key_values  TEXT[] NOT NULL,
    CHECK (cardinality(key_ids) = cardinality(key_values))
) PARTITION BY RANGE (received_at);
CREATE INDEX vehicle_snapshots_read_at_brin ON vehicle_snapshots USING brin (read_at);

-- +goose StatementBegin
DO $$
DECLARE p record;
BEGIN
    FOR p IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'vehicle_readings'::regclass
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF vehicle_snapshots %s',
            replace(p.relname, 'vehicle_readings_p', 'vehicle_snapshots_p'), p.bound);
    END LOOP;
END $$;
-- +goose StatementEnd
INSERT INTO vehicle_snapshots (vehicle_id, read_at, received_at, key_ids, key_values)
SELECT vehicle_id, read_at, received_at, array_agg(key_id), array_agg(value)
FROM vehicle_readings GROUP BY vehicle_id, read_at, received_at;
DROP TABLE vehicle_readings;

CREATE VIEW vehicle_readings AS
SELECT s.vehicle_id, s.read_at, s.received_at, r.key_id, r.value
FROM vehicle_snapshots s CROSS JOIN LATERAL unnest(s.key_ids, s.key_values) AS r(key_id, value);

-- 3. The push fan-out deletes the vehicle events it has processed (the
--    readings stay in the history), so every row of the outbox is pending:
--    the primary key serves the claim, and neither processed_at nor its
--    partial index (one more index entry per event) is needed.
DROP INDEX vehicle_events_pending_idx;
ALTER TABLE vehicle_events DROP COLUMN processed_at;

-- +goose Down
ALTER TABLE vehicle_events ADD COLUMN processed_at TIMESTAMPTZ;
CREATE INDEX vehicle_events_pending_idx ON vehicle_events (id) WHERE processed_at IS NULL;
DROP VIEW vehicle_readings;
CREATE TABLE vehicle_readings (
    vehicle_id  BIGINT NOT NULL,
    read_at     TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    key_id      SMALLINT NOT NULL,
    value       TEXT NOT NULL
) PARTITION BY RANGE (received_at);
CREATE INDEX vehicle_readings_read_at_brin ON vehicle_readings USING brin (read_at);
-- +goose StatementBegin
DO $$
DECLARE p record;
BEGIN
    FOR p IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'vehicle_snapshots'::regclass
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF vehicle_readings %s',
            replace(p.relname, 'vehicle_snapshots_p', 'vehicle_readings_p'), p.bound);
    END LOOP;
END $$;
-- +goose StatementEnd
INSERT INTO vehicle_readings (vehicle_id, read_at, received_at, key_id, value)
SELECT s.vehicle_id, s.read_at, s.received_at, r.key_id, r.value
FROM vehicle_snapshots s CROSS JOIN LATERAL unnest(s.key_ids, s.key_values) AS r(key_id, value);
DROP TABLE vehicle_snapshots;
ALTER TABLE vehicle_latest_values DROP COLUMN changed_at;
