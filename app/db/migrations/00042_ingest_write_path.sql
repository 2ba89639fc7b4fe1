-- +goose Up
-- Write-path tuning of the ingest, after measuring it (docs/PERFORMANCE.md).
--
-- 1. The reading history is append-only and nothing looks up one vehicle in
--    it (the latest values serve every query); the B-tree on
--    (vehicle_id, read_at) cost three to five times the insert itself. A BRIN
--    index on read_at costs next to nothing and still prunes time ranges.
--    Add a per-vehicle B-tree when a per-vehicle history reader appears.
DROP INDEX vehicle_readings_vehicle_idx;
CREATE INDEX vehicle_readings_read_at_brin ON vehicle_readings USING brin (read_at);

-- 2. Vehicle events: the foreign-key check locked the vehicle row (FOR KEY
--    SHARE, a WAL record) for every event, and two B-trees nobody reads were
--    maintained. Vehicles are never deleted; the consumer claims pending rows
--    by id and the retention deletes by creation time.
ALTER TABLE vehicle_events DROP CONSTRAINT vehicle_events_vehicle_id_fkey;
DROP INDEX vehicle_events_vehicle_idx;
DROP INDEX vehicle_events_created_idx;
CREATE INDEX vehicle_events_created_brin ON vehicle_events USING brin (created_at);

-- +goose Down
DROP INDEX vehicle_events_created_brin;
CREATE INDEX vehicle_events_created_idx ON vehicle_events (created_at);
CREATE INDEX vehicle_events_vehicle_idx ON vehicle_events (vehicle_id, read_at);
ALTER TABLE vehicle_events ADD CONSTRAINT vehicle_events_vehicle_id_fkey FOREIGN KEY (vehicle_id) REFERENCES vehicles(id) ON DELETE CASCADE;
DROP INDEX vehicle_readings_read_at_brin;
CREATE INDEX vehicle_readings_vehicle_idx ON vehicle_readings (vehicle_id, read_at);
