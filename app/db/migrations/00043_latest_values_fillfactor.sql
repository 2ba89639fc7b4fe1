-- +goose Up
-- A batch usually carries a whole snapshot of each vehicle, so every row on a
-- page of latest values is updated in the same transaction. The new versions
-- stay on the page (HOT: no index write, no bloat) only if half of it is
-- free: measured 99% HOT updates at fillfactor 50 against about 65% at 70,
-- and 10-25% more upserts per second (docs/PERFORMANCE.md).
ALTER TABLE vehicle_latest_values SET (fillfactor = 50);

-- +goose Down
ALTER TABLE vehicle_latest_values SET (fillfactor = 70);
