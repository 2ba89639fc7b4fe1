-- +goose Up
-- A vehicle master-data change's summary as a format and its arguments (as
-- audit_entries keeps them, 00095), so the vehicle page says the history in
-- its reader's language. summary keeps the English text; rows written
-- before stay English.
ALTER TABLE vehicle_master_data_changes ADD COLUMN summary_format TEXT NOT NULL DEFAULT '';
ALTER TABLE vehicle_master_data_changes ADD COLUMN summary_args JSONB NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE vehicle_master_data_changes DROP COLUMN summary_args;
ALTER TABLE vehicle_master_data_changes DROP COLUMN summary_format;
