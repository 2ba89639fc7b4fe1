-- +goose Up
-- Vehicle events the push fan-out could not process (a value that cannot
-- be sent, a push that cannot be stored): set aside with the error so the
-- events behind them go on, until staff retry them.
CREATE TABLE vehicle_events_dead (
    id         BIGINT PRIMARY KEY,
    vehicle_id BIGINT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE,
    key_id     SMALLINT NOT NULL,
    event_type TEXT NOT NULL,
    value      TEXT NOT NULL,
    read_at    TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    error      TEXT NOT NULL,
    failed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retries    INT NOT NULL DEFAULT 0
);
CREATE INDEX vehicle_events_dead_failed_idx ON vehicle_events_dead (failed_at DESC);

-- A delivery whose processing fails (not its receiver: the consent check or
-- the record of the attempt) is retried with back-off a few times, then
-- dead-lettered as processing_failed; this counts those failures.
ALTER TABLE webhook_deliveries ADD COLUMN processing_failures INT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE webhook_deliveries DROP COLUMN processing_failures;
DROP TABLE vehicle_events_dead;
