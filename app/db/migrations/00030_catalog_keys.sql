-- +goose Up
-- The telematics catalog, mirrored from onboarding/catalog/catalog.json so SQL
-- can join on keys (containers, latest values, reports). Ids are stable and
-- never reused; a key dropped from the file is marked retired, not deleted.
CREATE TABLE catalog_keys (
    id             SMALLINT PRIMARY KEY CHECK (id > 0),
    key            TEXT NOT NULL UNIQUE,
    data_type      TEXT NOT NULL CHECK (data_type IN ('integer','decimal','boolean','string','enum','json','timestamp')),
    enum_values    TEXT[] NOT NULL DEFAULT '{}',
    unit           TEXT NOT NULL DEFAULT '',
    min_value      DOUBLE PRECISION,
    max_value      DOUBLE PRECISION,
    category       TEXT NOT NULL CHECK (category IN ('basic','status','usage','event','electric','position','service')),
    sensitivity    TEXT NOT NULL CHECK (sensitivity IN ('normal','location','driving_behaviour')),
    pushable       BOOLEAN NOT NULL,
    push_event     TEXT NOT NULL DEFAULT '',
    drivetrains    TEXT[] NOT NULL DEFAULT '{}',
    description_en TEXT NOT NULL,
    description_de TEXT NOT NULL,
    retired        BOOLEAN NOT NULL DEFAULT FALSE
);

-- +goose Down
DROP TABLE catalog_keys;
