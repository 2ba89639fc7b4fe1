-- +goose Up
-- The ledger names the data (MISSION rule 5: "when and which data"): each
-- record stores the catalog key ids whose values were delivered, and a push
-- the push event it carried (the id the provider's receiver saw, evt_...) and
-- its type (vehicle.positionUpdated, ...). keys_delivered stays their count.
--
-- Records written before this migration stored only the count: which keys
-- they carried is not known and is not invented. Their key_ids stay NULL
-- and every view says "keys not recorded"; every record written from now on
-- must name its keys (the check below pins the boundary to the highest id
-- at migration time).
ALTER TABLE delivery_ledger
    ADD COLUMN key_ids    SMALLINT[],
    ADD COLUMN event_id   TEXT,
    ADD COLUMN event_type TEXT,
    ADD CONSTRAINT delivery_ledger_key_count CHECK (key_ids IS NULL OR cardinality(key_ids) = keys_delivered),
    ADD CONSTRAINT delivery_ledger_event_push CHECK (kind = 'push' OR (event_id IS NULL AND event_type IS NULL));
-- A push event names the keys it carries, for the ledger record of its delivery.
ALTER TABLE webhook_events ADD COLUMN key_ids SMALLINT[];
COMMENT ON COLUMN delivery_ledger.key_ids IS 'catalog key ids whose values were delivered; NULL only for records written before keys were recorded';

-- +goose StatementBegin
DO $$
BEGIN
    EXECUTE format('ALTER TABLE delivery_ledger ADD CONSTRAINT delivery_ledger_keys_named CHECK (key_ids IS NOT NULL OR id <= %s)',
        (SELECT COALESCE(max(id), 0) FROM delivery_ledger));
END;
$$;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE webhook_events DROP COLUMN key_ids;
ALTER TABLE delivery_ledger DROP CONSTRAINT delivery_ledger_keys_named, DROP CONSTRAINT delivery_ledger_event_push,
    DROP CONSTRAINT delivery_ledger_key_count, DROP COLUMN event_type, DROP COLUMN event_id, DROP COLUMN key_ids;
