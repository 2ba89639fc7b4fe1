-- +goose Up
-- Transactional e-mail outbox: a notification is written in the same
-- transaction as the change that causes it; a worker delivers it later.
CREATE TABLE email_outbox (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,                 -- e.g. provider.approved
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    object_type     TEXT NOT NULL DEFAULT '',
    object_id       TEXT NOT NULL DEFAULT '',
    dedupe_key      TEXT UNIQUE,                   -- same key is enqueued once
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','sent','failed')),
    attempts        INT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at         TIMESTAMPTZ
);
CREATE INDEX email_outbox_due_idx ON email_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX email_outbox_object_idx ON email_outbox (object_type, object_id);

-- +goose Down
DROP TABLE email_outbox;
