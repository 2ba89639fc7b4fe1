-- +goose Up
-- The language a data report's archive is written in: the one the customer
-- read /my in when asking ('' for a request staff made on their behalf:
-- then the customer's remembered language, else English).
ALTER TABLE data_reports ADD COLUMN lang TEXT NOT NULL DEFAULT '' CHECK (lang IN ('', 'de', 'en'));

-- +goose Down
ALTER TABLE data_reports DROP COLUMN lang;
