-- +goose Up
-- The language a person chose with the switch in the header ('de', 'en'),
-- remembered per staff user, provider user and customer account; '' when
-- they never chose (then the cookie or Accept-Language decides).
ALTER TABLE staff_users ADD COLUMN lang TEXT NOT NULL DEFAULT '' CHECK (lang IN ('', 'de', 'en'));
ALTER TABLE provider_users ADD COLUMN lang TEXT NOT NULL DEFAULT '' CHECK (lang IN ('', 'de', 'en'));
ALTER TABLE customer_accounts ADD COLUMN lang TEXT NOT NULL DEFAULT '' CHECK (lang IN ('', 'de', 'en'));

-- +goose Down
ALTER TABLE customer_accounts DROP COLUMN lang;
ALTER TABLE provider_users DROP COLUMN lang;
ALTER TABLE staff_users DROP COLUMN lang;
